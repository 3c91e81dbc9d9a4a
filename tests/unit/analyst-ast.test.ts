/**
 * The analyst SQL policy on syntax trees as ClickHouse 26.7 prints them (`EXPLAIN AST`, recorded
 * from chdb): statement kinds, SETTINGS / FORMAT / INTO OUTFILE children, table functions and
 * dictionaries in any position, other databases, and printouts that are not one consistent tree
 * (what a quoted identifier with line breaks produces). The real-ClickHouse side is in
 * tests/api/sql-escape.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { checkAnalystAst, parseExplainAst, type AstPolicy } from '../../sinks/clickhouse/analyst-ast.js';

const policy: AstPolicy = {
  database: 'streampulse',
  databases: ['default', 'streampulse', 'system', 'other_db'],
  tableFunctions: ['file', 'url', 'numbers', 'remote', 'format', 'view', 'generateSeries'],
  allowFormat: false,
};
const tree = (...lines: string[]) => lines.join('\n') + '\n';

const SELECT_FROM = (table: string) =>
  tree(
    'SelectWithUnionQuery (children 1)',
    ' ExpressionList (children 1)',
    '  SelectQuery (children 2)',
    '   ExpressionList (children 1)',
    '    Asterisk',
    '   TablesInSelectQuery (children 1)',
    '    TablesInSelectQueryElement (children 1)',
    '     TableExpression (children 1)',
    `      TableIdentifier ${table}`,
  );

describe('parseExplainAst', () => {
  it('builds the tree with types, text (aliases dropped) and children', () => {
    const root = parseExplainAst(
      tree(
        'SelectWithUnionQuery (children 1)',
        ' ExpressionList (children 1)',
        '  SelectQuery (children 1)',
        '   ExpressionList (children 1)',
        '    Literal UInt64_1 (alias one)',
      ),
    )!;
    expect(root.type).toBe('SelectWithUnionQuery');
    expect(root.children[0]!.children[0]!.children[0]!.children[0]).toEqual({ type: 'Literal', text: 'UInt64_1', children: [], declaredChildren: 0 });
  });

  it('refuses printouts that are not one consistent tree', () => {
    // `a\nb` as a quoted identifier: a second root.
    expect(parseExplainAst(tree('SelectWithUnionQuery (children 1)', ' ExpressionList (children 1)', '  Identifier a', 'b'))).toBeNull();
    // An injected line indented as a sibling: its parent's declared count no longer matches.
    expect(parseExplainAst(tree('SelectWithUnionQuery (children 1)', ' ExpressionList (children 1)', '  Identifier a', '  Function file'))).toBeNull();
    // An injected line under a leaf.
    expect(parseExplainAst(tree('SelectWithUnionQuery (children 1)', ' ExpressionList (children 1)', '  Identifier a', '   Identifier b'))).toBeNull();
    // A jump of two levels.
    expect(parseExplainAst(tree('SelectWithUnionQuery (children 1)', '   ExpressionList'))).toBeNull();
    expect(parseExplainAst('')).toBeNull();
  });
});

describe('checkAnalystAst', () => {
  it('allows SELECT of the project database, unqualified names, EXPLAIN and DESCRIBE', () => {
    expect(checkAnalystAst(SELECT_FROM('streampulse.qoe_views'), policy)).toEqual({ ok: true, kind: 'select' });
    expect(checkAnalystAst(SELECT_FROM('qoe_views'), policy)).toEqual({ ok: true, kind: 'select' });
    expect(checkAnalystAst(SELECT_FROM('system.one'), policy)).toEqual({ ok: true, kind: 'select' });
    expect(
      checkAnalystAst(
        tree(
          'Explain EXPLAIN (children 1)',
          ' SelectWithUnionQuery (children 1)',
          '  ExpressionList (children 1)',
          '   SelectQuery (children 1)',
          '    ExpressionList (children 1)',
          '     Literal UInt64_1',
        ),
        policy,
      ),
    ).toEqual({ ok: true, kind: 'explain' });
    expect(checkAnalystAst(tree('DescribeQuery (children 1)', ' TableExpression (children 1)', '  TableIdentifier streampulse.fx_rates'), policy)).toEqual({
      ok: true,
      kind: 'describe',
    });
  });

  it('names the statement it refuses', () => {
    expect(checkAnalystAst(tree('InsertQuery   (children 1)', ' Identifier t'), policy)).toEqual({
      ok: false,
      reason: 'only read-only statements (SELECT, WITH, EXPLAIN, DESCRIBE) are allowed, got INSERT',
    });
    expect(checkAnalystAst(tree('CreateUserQuery'), policy)).toMatchObject({ reason: expect.stringMatching(/got CREATE USER$/) });
    expect(checkAnalystAst(tree('KillQueryQuery Literal_UInt64_1 ASYNC (children 1)', ' Literal UInt64_1'), policy)).toMatchObject({
      reason: expect.stringMatching(/got KILL$/),
    });
    expect(checkAnalystAst(tree('Set'), policy)).toMatchObject({ reason: expect.stringMatching(/got SET$/) });
    expect(checkAnalystAst(tree('Explain EXPLAIN SYNTAX (children 1)', ' CreateQuery  x (children 1)', '  Identifier x'), policy)).toMatchObject({
      reason: 'EXPLAIN is allowed of a SELECT only, got CREATE',
    });
  });

  it('refuses INTO OUTFILE, SETTINGS, and FORMAT where the caller answers JSON', () => {
    const withExtra = (...extra: string[]) =>
      tree(
        'SelectWithUnionQuery (children ' + (1 + extra.length) + ')',
        ' ExpressionList (children 1)',
        '  SelectQuery (children 1)',
        '   ExpressionList (children 1)',
        '    Literal UInt64_1',
        ...extra,
      );
    expect(checkAnalystAst(withExtra(" Literal '/tmp/x.txt'"), policy)).toEqual({ ok: false, reason: 'INTO OUTFILE is not allowed' });
    expect(checkAnalystAst(withExtra(" Literal '/tmp/x.txt'", ' Identifier CSV'), { ...policy, allowFormat: true })).toEqual({
      ok: false,
      reason: 'INTO OUTFILE is not allowed',
    });
    expect(checkAnalystAst(withExtra(' Identifier CSV'), policy)).toEqual({ ok: false, reason: 'FORMAT is not allowed here: the endpoint answers JSON' });
    expect(checkAnalystAst(withExtra(' Identifier CSV'), { ...policy, allowFormat: true })).toEqual({ ok: true, kind: 'select' });
    expect(
      checkAnalystAst(
        tree(
          'SelectWithUnionQuery (children 1)',
          ' ExpressionList (children 1)',
          '  SelectQuery (children 2)',
          '   ExpressionList (children 1)',
          '    Literal UInt64_1',
          '   Set',
        ),
        policy,
      ),
    ).toMatchObject({ reason: expect.stringMatching(/^SETTINGS is not allowed/) });
  });

  it('refuses table functions other than generators, scalar file(), dictionaries and joinGet, in any position', () => {
    const fn = (name: string, depth = 4) =>
      tree(
        'SelectWithUnionQuery (children 1)',
        ' ExpressionList (children 1)',
        '  SelectQuery (children 1)',
        '   ExpressionList (children 1)',
        `${' '.repeat(depth)}Function ${name}`,
      );
    expect(checkAnalystAst(fn('file'), policy)).toEqual({ ok: false, reason: 'function file() is not allowed' });
    expect(checkAnalystAst(fn('url'), policy)).toEqual({ ok: false, reason: 'table function url() is not allowed' });
    expect(checkAnalystAst(fn('REMOTE'), policy)).toEqual({ ok: false, reason: 'table function REMOTE() is not allowed' });
    expect(checkAnalystAst(fn('dictGetString'), policy)).toEqual({ ok: false, reason: 'dictionaries are not allowed (dictGetString)' });
    expect(checkAnalystAst(fn('joinGet'), policy)).toEqual({ ok: false, reason: 'function joinGet() is not allowed' });
    for (const ok of ['numbers', 'generateSeries', 'format', 'view', 'plus', 'sum'])
      expect(checkAnalystAst(fn(ok), policy), ok).toEqual({ ok: true, kind: 'select' });
  });

  it('refuses tables of other databases by TableIdentifier and by dotted Identifier', () => {
    expect(checkAnalystAst(SELECT_FROM('system.processes'), policy)).toEqual({ ok: false, reason: 'database system is not allowed: only streampulse' });
    expect(checkAnalystAst(SELECT_FROM('other_db.secrets'), policy)).toEqual({ ok: false, reason: 'database other_db is not allowed: only streampulse' });
    expect(checkAnalystAst(SELECT_FROM('INFORMATION_SCHEMA.COLUMNS'), policy)).toEqual({
      ok: false,
      reason: 'database INFORMATION_SCHEMA is not allowed: only streampulse',
    });
    // A database that does not exist (yet) is refused too; so is a three-part name.
    expect(checkAnalystAst(SELECT_FROM('newdb.t'), policy)).toEqual({ ok: false, reason: 'database newdb is not allowed: only streampulse' });
    expect(checkAnalystAst(SELECT_FROM('streampulse.a.b'), policy)).toMatchObject({ ok: false });
    const inTable = tree(
      'SelectWithUnionQuery (children 1)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 1)',
      '   ExpressionList (children 1)',
      '    Function in (children 1)',
      '     ExpressionList (children 2)',
      '      Literal UInt64_1',
      '      Identifier system.tables',
    );
    expect(checkAnalystAst(inTable, policy)).toEqual({ ok: false, reason: 'database system is not allowed: only streampulse' });
    // A column qualified by a table alias is not a database.
    const column = tree(
      'SelectWithUnionQuery (children 1)',
      ' ExpressionList (children 1)',
      '  SelectQuery (children 1)',
      '   ExpressionList (children 1)',
      '    Identifier v.cdn',
    );
    expect(checkAnalystAst(column, policy)).toEqual({ ok: true, kind: 'select' });
  });
});
