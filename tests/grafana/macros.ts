/** The grafana-clickhouse-datasource macro expansions, shared by the Grafana and conformance tests. */
/** The backend expansions of grafana-clickhouse-datasource v4 for [fromMs, toMs] and an interval. */
export function expandMacros(sql: string, fromMs: number, toMs: number, intervalS: number, vars: Record<string, string> = {}): string {
  const F = Math.floor(fromMs / 1000),
    T = Math.floor(toMs / 1000),
    N = Math.max(1, intervalS);
  const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  return (
    sql
      .replace(/\$__timeFilter_ms\(([^)]+)\)/g, (_m, c) => `${c} >= fromUnixTimestamp64Milli(${fromMs}) AND ${c} <= fromUnixTimestamp64Milli(${toMs})`)
      .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, c) => `${c} >= toDateTime(${F}) AND ${c} <= toDateTime(${T})`)
      .replace(/\$__dateFilter\(([^)]+)\)/g, (_m, c) => `${c} >= toDate('${date(fromMs)}') AND ${c} <= toDate('${date(toMs)}')`)
      .replace(/\$__timeInterval_ms\(([^)]+)\)/g, (_m, c) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${N * 1000} millisecond)`)
      .replace(/\$__timeInterval\(([^)]+)\)/g, (_m, c) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${N} second)`)
      .replace(/\$__fromTime_ms/g, `fromUnixTimestamp64Milli(${fromMs})`)
      .replace(/\$__toTime_ms/g, `fromUnixTimestamp64Milli(${toMs})`)
      .replace(/\$__fromTime/g, `toDateTime(${F})`)
      .replace(/\$__toTime/g, `toDateTime(${T})`)
      .replace(/\$__interval_s/g, String(N))
      // Dashboard variables in the sqlstring format: quoted, quotes and backslashes escaped (empty by default).
      .replace(/\$\{(\w+):sqlstring\}/g, (_m, v: string) => `'${(vars[v] ?? '').replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`)
  );
}
