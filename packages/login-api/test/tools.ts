import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const dist = (file: string): string => fileURLToPath(new URL(`../dist/${file}`, import.meta.url))

/** A built entry point (`cli/migrate.js`, say), run as an operator runs it: its exit code and both outputs. */
export async function runTool (file: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [dist(file), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}
