/**
 * The analysts' SQL endpoint accepts one read-only statement. Three layers, any one of which
 * refuses a write: (1) this check (one statement, SELECT/WITH/EXPLAIN/DESCRIBE first,
 * no SETTINGS/INTO OUTFILE/FORMAT of its own, no table functions that reach outside the
 * database); (2) the query runs with `SETTINGS readonly = 1` appended, so ClickHouse itself
 * refuses anything that writes or changes settings; (3) max_execution_time and max_result_rows
 * bound its cost. Both overflow modes are 'break' (the answer is cut and flagged `truncated`), not
 * 'throw': embedded chdb hands the rest of an aborted result to the next query on the connection.
 */
export interface SqlLimits {
  maxExecutionSeconds: number;
  maxResultRows: number;
}

const ALLOWED_FIRST = new Set(['SELECT', 'WITH', 'EXPLAIN', 'DESCRIBE', 'DESC']);
const FORBIDDEN_WORDS = ['SETTINGS', 'OUTFILE', 'FORMAT', 'INSERT', 'ALTER', 'DROP', 'TRUNCATE', 'CREATE', 'RENAME', 'ATTACH', 'DETACH', 'OPTIMIZE', 'GRANT', 'REVOKE', 'KILL', 'SYSTEM'];
const FORBIDDEN_FUNCTIONS = ['url', 'file', 's3', 's3cluster', 'remote', 'remotesecure', 'cluster', 'clusterallreplicas', 'mysql', 'postgresql', 'hdfs', 'jdbc', 'odbc', 'executable', 'input', 'azureblobstorage', 'gcs', 'iceberg', 'deltalake', 'hudi', 'mongodb', 'redis', 'sqlite', 'dictionary'];

/** Removes comments and string literals (replaced by '') so keywords inside them do not count. */
function stripLiterals(sql: string): string {
  return sql
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/'(?:[^'\\]|\\.|'')*'/g, "''")
    .replace(/`(?:[^`\\]|\\.)*`/g, '``');
}

export type GuardResult = { ok: true; sql: string } | { ok: false; reason: string };

export function guardSql(input: string, limits: SqlLimits): GuardResult {
  const trimmed = input.trim().replace(/;\s*$/, '');
  if (!trimmed) return { ok: false, reason: 'empty query' };
  const bare = stripLiterals(trimmed);
  if (bare.includes(';')) return { ok: false, reason: 'only one statement is allowed' };
  const words: string[] = bare.toUpperCase().match(/[A-Z_][A-Z0-9_]*/g) ?? [];
  const first = words[0] ?? '';
  if (!ALLOWED_FIRST.has(first)) return { ok: false, reason: `only read-only statements (SELECT, WITH, EXPLAIN, DESCRIBE) are allowed, got ${first || 'nothing'}` };
  for (const w of FORBIDDEN_WORDS) if (words.includes(w)) return { ok: false, reason: `${w} is not allowed here` };
  const calls = bare.toLowerCase().match(/\b([a-z_][a-z0-9_]*)\s*\(/g) ?? [];
  for (const c of calls) {
    const name = c.replace(/\s*\($/, '');
    if (FORBIDDEN_FUNCTIONS.includes(name)) return { ok: false, reason: `table function ${name}() is not allowed` };
  }
  const sql = `${trimmed}\nSETTINGS readonly = 1, max_execution_time = ${limits.maxExecutionSeconds}, max_result_rows = ${limits.maxResultRows}, result_overflow_mode = 'break', timeout_overflow_mode = 'break'`;
  return { ok: true, sql };
}
