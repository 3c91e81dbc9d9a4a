/**
 * The policy of analyst SQL, applied to ClickHouse's own parse of the statement: the text of
 * `EXPLAIN AST <statement>` (one node per line, indented by depth, `(children N)` when a node
 * has children). Pure: no I/O. sinks/clickhouse/analyst.ts obtains the text from ClickHouse and
 * runs the statement only when `checkAnalystAst` answers ok.
 *
 * What the rules look at, and why they do not depend on where a node sits:
 * - the statement kind (the root node): SELECT (with WITH, UNION, subqueries), EXPLAIN of a
 *   SELECT, DESCRIBE;
 * - `Set` nodes (a SETTINGS clause anywhere): refused, the limits are the server's;
 * - extra children of a SelectWithUnionQuery or DescribeQuery: a Literal is INTO OUTFILE (refused), an
 *   Identifier is FORMAT (refused on the SQL endpoint, which answers JSON; allowed on the
 *   ClickHouse port, where clients choose their format that way);
 * - every `Function` node, in any position: table functions other than a few pure generators,
 *   `file` (also a scalar function that reads a file), dictionaries, joinGet and other functions
 *   that reach outside the project's database are refused;
 * - every `TableIdentifier` and dotted `Identifier` (`x IN system.tables` names a table with an
 *   Identifier): a database other than the project's is refused, except a few system tables.
 * ClickHouse prints identifiers unquoted, so a quoted identifier holding a newline can add lines;
 * the tree is therefore checked for consistency first (one root, each node's declared child count
 * met), and a text that does not parse as one consistent tree is refused rather than guessed at.
 */

export interface AstNode {
  type: string;
  /** The rest of the line after the type, without `(alias …)` and `(children N)`. */
  text: string;
  children: AstNode[];
  declaredChildren: number;
}

export interface AstPolicy {
  /** The project's database: the only one whose tables may be named. */
  database: string;
  /** Names of existing databases (any case as ClickHouse spells them); refused as prefixes. */
  databases: readonly string[];
  /** Every table function ClickHouse knows (system.table_functions), lower-cased or not. */
  tableFunctions: readonly string[];
  /** FORMAT allowed (the ClickHouse port) or refused (the SQL endpoint answers JSON). */
  allowFormat: boolean;
}

export type AstVerdict = { ok: true; kind: 'select' | 'explain' | 'describe' } | { ok: false; reason: string };

/** Table functions that only generate values from their arguments. */
export const ALLOWED_TABLE_FUNCTIONS = new Set(['numbers', 'numbers_mt', 'generate_series', 'generateseries', 'values', 'view', 'format', 'primes']);
/** Scalar functions that read files, dictionaries, other tables, server config or write to Keeper. */
const DENIED_FUNCTIONS = new Set([
  'file',
  'joinget',
  'joingetornull',
  'hascolumnintable',
  'catboostevaluate',
  'naivebayesclassifier',
  'getclienthttpheader',
  'getserversetting',
  'getmergetreesetting',
  'generateserialid',
  'filesystemavailable',
  'filesystemcapacity',
  'filesystemunreserved',
  'getmacro',
  'globalvariable',
]);
/** System tables an analyst may read: constants and the part counts the pipeline dashboard shows. */
export const ALLOWED_SYSTEM_TABLES = new Set(['system.one', 'system.numbers', 'system.numbers_mt', 'system.parts']);
const ALWAYS_OTHER_DATABASES = ['system', 'information_schema', 'INFORMATION_SCHEMA'];

const LINE = /^( *)(\S+)(.*)$/;
const CHILDREN = / \(children (\d+)\)$/;
const ALIAS = / \(alias [^)]*\)$/;

/** Parses `EXPLAIN AST` output into one tree; null when it is not one consistent tree. */
export function parseExplainAst(text: string): AstNode | null {
  const lines = text.replace(/\n+$/, '').split('\n');
  const stack: Array<{ node: AstNode; depth: number }> = [];
  let root: AstNode | null = null;
  for (const line of lines) {
    const m = LINE.exec(line);
    if (!m) return null;
    const depth = m[1]!.length;
    let rest = m[3]!;
    let declaredChildren = 0;
    const c = CHILDREN.exec(rest);
    if (c) {
      declaredChildren = Number(c[1]);
      rest = rest.slice(0, c.index);
    }
    rest = rest.replace(ALIAS, '');
    const node: AstNode = { type: m[2]!, text: rest.trim(), children: [], declaredChildren };
    if (depth === 0) {
      if (root) return null; // a second root: not one statement's tree
      root = node;
      stack.length = 0;
      stack.push({ node, depth });
      continue;
    }
    while (stack.length && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1];
    if (!parent || parent.depth !== depth - 1) return null; // indentation jumps a level
    parent.node.children.push(node);
    stack.push({ node, depth });
  }
  if (!root) return null;
  const consistent = (n: AstNode): boolean => n.children.length === n.declaredChildren && n.children.every(consistent);
  return consistent(root) ? root : null;
}

/** Node types whose statement name is not their spelled-out type. */
const STATEMENT_NAMES: Record<string, string> = { Rename: 'RENAME/EXCHANGE', Set: 'SET', KillQueryQuery: 'KILL' };

/** The statement's verdict under the policy (see the file comment). */
export function checkAnalystAst(explain: string, policy: AstPolicy): AstVerdict {
  const root = parseExplainAst(explain);
  if (!root)
    return {
      ok: false,
      reason: 'the statement could not be checked (its syntax tree is not one consistent tree; identifiers with line breaks are not allowed)',
    };
  let kind: 'select' | 'explain' | 'describe';
  if (root.type === 'SelectWithUnionQuery') kind = 'select';
  else if (root.type === 'Explain') {
    kind = 'explain';
    const bad = root.children.find((c) => c.type !== 'SelectWithUnionQuery' && c.type !== 'Set');
    if (bad) return { ok: false, reason: `EXPLAIN is allowed of a SELECT only, got ${statementName(bad.type)}` };
  } else if (root.type === 'DescribeQuery') kind = 'describe';
  else return { ok: false, reason: `only read-only statements (SELECT, WITH, EXPLAIN, DESCRIBE) are allowed, got ${statementName(root.type)}` };

  const tableFunctions = new Set(policy.tableFunctions.map((f) => f.toLowerCase()));
  const otherDatabases = new Set([...policy.databases, ...ALWAYS_OTHER_DATABASES].filter((d) => d !== policy.database));
  let refusal: string | null = null;
  const visit = (n: AstNode, parent: AstNode | null): void => {
    if (refusal) return;
    refusal = checkNode(n, parent, policy, tableFunctions, otherDatabases);
    for (const c of n.children) visit(c, n);
  };
  visit(root, null);
  return refusal ? { ok: false, reason: refusal } : { ok: true, kind };
}

/** `CreateUserQuery` → `CREATE USER`, as an analyst would write the statement. */
function statementName(type: string): string {
  return (
    STATEMENT_NAMES[type] ??
    type
      .replace(/Query$/, '')
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toUpperCase()
  );
}

function checkNode(n: AstNode, parent: AstNode | null, policy: AstPolicy, tableFunctions: Set<string>, otherDatabases: Set<string>): string | null {
  switch (n.type) {
    case 'Set':
      return 'SETTINGS is not allowed: the server sets the limits of analyst queries';
    case 'SelectWithUnionQuery':
    case 'DescribeQuery':
      // Both are statements with output (DESCRIBE too: its INTO OUTFILE writes the file, and
      // read-only mode lets it): the first child is the query or table, the rest its output clauses.
      for (const extra of n.children.slice(1)) {
        if (extra.type === 'Literal') return 'INTO OUTFILE is not allowed';
        if (extra.type === 'Identifier') {
          if (!policy.allowFormat) return 'FORMAT is not allowed here: the endpoint answers JSON';
        } else if (extra.type !== 'Set') return `unexpected ${extra.type} after the query`;
      }
      return null;
    case 'Function': {
      const name = n.text.split(' ')[0] ?? '';
      const lower = name.toLowerCase();
      if (lower.startsWith('dict')) return `dictionaries are not allowed (${name})`;
      if (DENIED_FUNCTIONS.has(lower)) return `function ${name}() is not allowed`;
      if (tableFunctions.has(lower) && !ALLOWED_TABLE_FUNCTIONS.has(lower)) {
        // Scalar functions that share a name with a table function (format) are harmless either way.
        return `table function ${name}() is not allowed`;
      }
      return null;
    }
    case 'TableIdentifier':
      return checkTableName(n.text, policy.database, otherDatabases);
    case 'Identifier': {
      // Only dotted identifiers can name another database's table (x IN system.tables).
      if (!n.text.includes('.') || parent?.type === 'SelectWithUnionQuery') return null;
      const first = n.text.slice(0, n.text.indexOf('.'));
      if (otherDatabases.has(first) && !ALLOWED_SYSTEM_TABLES.has(n.text)) return `database ${first} is not allowed: only ${policy.database}`;
      return null;
    }
    default:
      return null;
  }
}

function checkTableName(name: string, database: string, otherDatabases: Set<string>): string | null {
  const dot = name.indexOf('.');
  if (dot < 0) return null; // unqualified: the session's database (the project's) or a WITH name
  if (ALLOWED_SYSTEM_TABLES.has(name)) return null;
  const db = name.slice(0, dot);
  if (db !== database || name.indexOf('.', dot + 1) >= 0) {
    const named = otherDatabases.has(db) || db !== database ? db : name;
    return `database ${named} is not allowed: only ${database}`;
  }
  return null;
}
