import { sql, type Kysely } from 'kysely'
import { Migrator, type Migration } from 'kysely/migration'
import type { SqlDialect } from './database-config.js'

export interface UsersTable {
  user_id: string
  unionid: string | null
  nickname: string | null
  head_pic: string | null
  /** The phone (number, pure number, country code), AES-GCM sealed with PII_ENCRYPTION_KEY_FILE. */
  phone_sealed: string | null
  /** 138****5678: what other services may show without the key. */
  phone_masked: string | null
  phone_country_code: string | null
  /** When WeChat verified the phone (the same number again keeps the first time); null without one. */
  phone_verified_at: Date | null
  created_at: Date
  updated_at: Date
}

export interface IdentitiesTable {
  appid: string
  openid: string
  user_id: string
  created_at: Date
}

export interface Tables {
  wxlogin_users: UsersTable
  wxlogin_identities: IdentitiesTable
}

/**
 * The versioned migrations, in name order. Never edit one that has shipped: add the next.
 * MySQL tables are utf8mb4 with a binary collation: openids differ by case, and nicknames
 * carry emoji.
 */
function migrations (dialect: SqlDialect): Record<string, Migration> {
  const mysql = dialect === 'mysql'
  const timestamp = mysql ? sql`datetime(3)` : sql`timestamptz`
  const tableOptions = mysql ? sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin` : sql``
  return {
    '0001-users-and-identities': {
      async up (db: Kysely<any>) {
        await db.schema
          .createTable('wxlogin_users')
          .addColumn('user_id', 'varchar(64)', c => c.primaryKey())
          // Unique where set: both dialects allow any number of NULLs under a unique index.
          .addColumn('unionid', 'varchar(128)', c => c.unique())
          .addColumn('nickname', 'varchar(128)')
          .addColumn('head_pic', 'varchar(1024)')
          .addColumn('phone_sealed', 'text')
          .addColumn('phone_masked', 'varchar(32)')
          .addColumn('phone_country_code', 'varchar(8)')
          .addColumn('created_at', timestamp, c => c.notNull())
          .addColumn('updated_at', timestamp, c => c.notNull())
          .modifyEnd(tableOptions)
          .execute()
        await db.schema
          .createTable('wxlogin_identities')
          .addColumn('appid', 'varchar(64)', c => c.notNull())
          .addColumn('openid', 'varchar(128)', c => c.notNull())
          .addColumn('user_id', 'varchar(64)', c => c.notNull().references('wxlogin_users.user_id').onDelete('cascade'))
          .addColumn('created_at', timestamp, c => c.notNull())
          .addPrimaryKeyConstraint('wxlogin_identities_pkey', ['appid', 'openid'])
          .modifyEnd(tableOptions)
          .execute()
        await db.schema.createIndex('wxlogin_identities_user_id').on('wxlogin_identities').column('user_id').execute()
      },
      async down (db: Kysely<any>) {
        await db.schema.dropTable('wxlogin_identities').execute()
        await db.schema.dropTable('wxlogin_users').execute()
      }
    },
    '0002-phone-verified-at': {
      async up (db: Kysely<any>) {
        await db.schema.alterTable('wxlogin_users').addColumn('phone_verified_at', timestamp).execute()
        // A phone on file was verified when its row last changed, or earlier.
        await db
          .updateTable('wxlogin_users')
          .set({ phone_verified_at: sql`updated_at` })
          .where('phone_sealed', 'is not', null)
          .execute()
      },
      async down (db: Kysely<any>) {
        await db.schema.alterTable('wxlogin_users').dropColumn('phone_verified_at').execute()
      }
    }
  }
}

export function migrator (db: Kysely<any>, dialect: SqlDialect): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations(dialect) },
    // Named for this service: the company's database may hold other services' Kysely tables.
    migrationTableName: 'wxlogin_migrations',
    migrationLockTableName: 'wxlogin_migrations_lock'
  })
}

/** The migrations this release needs that the database has not applied (empty: up to date). */
export async function pendingMigrations (db: Kysely<any>, dialect: SqlDialect): Promise<string[]> {
  const all = await migrator(db, dialect).getMigrations()
  return all.filter(m => m.executedAt === undefined).map(m => m.name)
}

/** Applies every pending migration (under Kysely's lock: two instances starting together apply each once). */
export async function migrateToLatest (db: Kysely<any>, dialect: SqlDialect): Promise<string[]> {
  const { error, results } = await migrator(db, dialect).migrateToLatest()
  if (error !== undefined) throw error instanceof Error ? error : new Error(String(error))
  return (results ?? []).filter(r => r.status === 'Success').map(r => r.migrationName)
}
