import type { Registry } from 'prom-client'

/**
 * Sums a metric's samples matching `labels`, read from an app's own registry. `name` may be a
 * histogram's `_count` or `_sum` (its buckets are left out of the sum).
 */
export async function metricValue (
  app: { registry: Registry },
  name: string,
  labels: Record<string, string> = {}
): Promise<number> {
  const metric = await app.registry.getSingleMetric(name.replace(/_(count|sum)$/, ''))?.get()
  if (metric === undefined) return 0
  return metric.values
    .filter(v => Object.entries(labels).every(([k, val]) => String((v.labels as Record<string, unknown>)[k]) === val))
    .filter(v => {
      const sample = (v as { metricName?: string }).metricName
      return sample === undefined || sample === name
    })
    .reduce((sum, v) => sum + v.value, 0)
}
