/**
 * The schema registry's model: subjects, versions, global ids, compatibility levels, and the
 * Avro compatibility check (avsc resolvers). State is rebuilt from, and every change is first
 * written to, a `RegistryLog` (a compacted Kafka topic in production, an array in unit tests),
 * using the record layout of Confluent's `_schemas` topic.
 */
import avro from 'avsc';
import type { RegistryLog, LogRecord } from './log.js';

export const COMPATIBILITY_LEVELS = ['NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE'] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD';

/** Confluent error codes used by this registry. */
export const ERR = {
  subjectNotFound: 40401,
  versionNotFound: 40402,
  schemaNotFound: 40403,
  subjectLevelConfigNotFound: 40408,
  incompatible: 409,
  invalidSchema: 42201,
  invalidVersion: 42202,
  invalidCompatibility: 42203,
  storeError: 50001,
} as const;

/** An error the HTTP layer answers as `{error_code, message}` with `status`. */
export class RegistryHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryHttpError';
  }
}

export interface SchemaVersion {
  subject: string;
  version: number;
  id: number;
  schema: string;
  deleted: boolean;
}

/** Key and value of a schema record in the log (Confluent layout). */
interface SchemaKey {
  keytype: 'SCHEMA';
  subject: string;
  version: number;
  magic: 1;
}
interface ConfigKey {
  keytype: 'CONFIG';
  subject: string | null;
  magic: 0;
}

interface ParsedSchema {
  type: avro.Type;
  canonical: string;
}

export function parseAvro(schema: string): ParsedSchema {
  let json: unknown;
  try {
    json = JSON.parse(schema);
  } catch (err) {
    throw new RegistryHttpError(422, ERR.invalidSchema, `Invalid schema: not JSON (${(err as Error).message})`);
  }
  try {
    const type = avro.Type.forSchema(json as avro.Schema);
    return { type, canonical: JSON.stringify(type.schema({ exportAttrs: true })) };
  } catch (err) {
    throw new RegistryHttpError(422, ERR.invalidSchema, `Invalid Avro schema: ${(err as Error).message}`);
  }
}

/** Can data written with `writer` be read with `reader`? Returns the reason when not. */
export function canRead(reader: avro.Type, writer: avro.Type): { ok: true } | { ok: false; reason: string } {
  try {
    reader.createResolver(writer);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/**
 * Checks `candidate` against `existing` versions (oldest first) under `level`. BACKWARD: the new
 * schema reads data of the latest one; FORWARD: the latest reads data of the new one; FULL:
 * both; *_TRANSITIVE: against every version, not only the latest.
 */
export function checkCompatibility(level: CompatibilityLevel, candidate: avro.Type, existing: readonly avro.Type[]): string[] {
  if (level === 'NONE' || existing.length === 0) return [];
  const against = level.endsWith('_TRANSITIVE') ? existing : existing.slice(-1);
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  const problems: string[] = [];
  against.forEach((old) => {
    if (backward) {
      const r = canRead(candidate, old);
      if (!r.ok) problems.push(`new schema cannot read data written with an existing version: ${r.reason}`);
    }
    if (forward) {
      const r = canRead(old, candidate);
      if (!r.ok) problems.push(`an existing version cannot read data written with the new schema: ${r.reason}`);
    }
  });
  return problems;
}

function isLevel(s: unknown): s is CompatibilityLevel {
  return typeof s === 'string' && (COMPATIBILITY_LEVELS as readonly string[]).includes(s);
}

export class SchemaRegistry {
  private readonly schemasById = new Map<number, string>();
  private readonly idByCanonical = new Map<string, number>();
  private readonly subjects = new Map<string, Map<number, SchemaVersion>>();
  private readonly subjectLevels = new Map<string, CompatibilityLevel>();
  private globalLevel: CompatibilityLevel = DEFAULT_COMPATIBILITY;
  private maxId = 0;
  /** Serialises writes inside this process. */
  private writeChain: Promise<unknown> = Promise.resolve();

  constructor(private readonly log: RegistryLog) {}

  /** Reads the whole log to rebuild the state. Call once before serving. */
  async load(): Promise<void> {
    await this.log.catchUp((r) => this.apply(r));
  }

  /** Applies one log record; idempotent, so re-reading our own writes is harmless. */
  apply(r: LogRecord): void {
    if (r.key === null) return;
    let key: SchemaKey | ConfigKey;
    try {
      key = JSON.parse(r.key) as SchemaKey | ConfigKey;
    } catch {
      return;
    }
    if (key.keytype === 'SCHEMA') {
      const versions = this.subjects.get(key.subject) ?? new Map<number, SchemaVersion>();
      if (r.value === null) {
        versions.delete(key.version);
      } else {
        const v = JSON.parse(r.value) as { subject: string; version: number; id: number; schema: string; deleted?: boolean };
        versions.set(v.version, { subject: v.subject, version: v.version, id: v.id, schema: v.schema, deleted: v.deleted === true });
        if (!this.schemasById.has(v.id)) {
          this.schemasById.set(v.id, v.schema);
          try {
            this.idByCanonical.set(parseAvro(v.schema).canonical, v.id);
          } catch {
            /* a schema we cannot parse is still served by id */
          }
        }
        this.maxId = Math.max(this.maxId, v.id);
      }
      if (versions.size > 0) this.subjects.set(key.subject, versions);
      else this.subjects.delete(key.subject);
    } else if (key.keytype === 'CONFIG') {
      const level = r.value === null ? null : (JSON.parse(r.value) as { compatibilityLevel?: unknown }).compatibilityLevel;
      if (key.subject === null) this.globalLevel = isLevel(level) ? level : DEFAULT_COMPATIBILITY;
      else if (isLevel(level)) this.subjectLevels.set(key.subject, level);
      else this.subjectLevels.delete(key.subject);
    }
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.writeChain.then(fn, fn);
    this.writeChain = next.catch(() => {});
    return next;
  }

  private async write(key: SchemaKey | ConfigKey, value: object | null): Promise<void> {
    const rec: LogRecord = { key: JSON.stringify(key), value: value === null ? null : JSON.stringify(value) };
    await this.log.append(rec);
    this.apply(rec);
  }

  /** Live versions of a subject, oldest first (soft-deleted ones only when asked). */
  private versionsOf(subject: string, includeDeleted = false): SchemaVersion[] {
    const all = [...(this.subjects.get(subject)?.values() ?? [])].sort((a, b) => a.version - b.version);
    return includeDeleted ? all : all.filter((v) => !v.deleted);
  }

  listSubjects(includeDeleted = false): string[] {
    return [...this.subjects.keys()].filter((s) => this.versionsOf(s, includeDeleted).length > 0).sort();
  }

  listVersions(subject: string, includeDeleted = false): number[] {
    const vs = this.versionsOf(subject, includeDeleted);
    if (vs.length === 0) throw new RegistryHttpError(404, ERR.subjectNotFound, `Subject '${subject}' not found.`);
    return vs.map((v) => v.version);
  }

  getVersion(subject: string, version: string): SchemaVersion {
    const vs = this.versionsOf(subject);
    if (vs.length === 0) throw new RegistryHttpError(404, ERR.subjectNotFound, `Subject '${subject}' not found.`);
    if (version === 'latest' || version === '-1') return vs[vs.length - 1]!;
    if (!/^\d+$/.test(version) || Number(version) < 1)
      throw new RegistryHttpError(
        422,
        ERR.invalidVersion,
        `The specified version '${version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`,
      );
    const v = vs.find((x) => x.version === Number(version));
    if (!v) throw new RegistryHttpError(404, ERR.versionNotFound, `Version ${version} not found.`);
    return v;
  }

  getSchemaById(id: number): string {
    const s = this.schemasById.get(id);
    if (s === undefined) throw new RegistryHttpError(404, ERR.schemaNotFound, `Schema ${id} not found`);
    return s;
  }

  /** Subjects and versions that use schema `id`. */
  versionsOfId(id: number): { subject: string; version: number }[] {
    this.getSchemaById(id);
    return this.listSubjects().flatMap((s) =>
      this.versionsOf(s)
        .filter((v) => v.id === id)
        .map((v) => ({ subject: s, version: v.version })),
    );
  }

  /** POST /subjects/{subject}: the version of `subject` holding this schema. */
  lookup(subject: string, schema: string): SchemaVersion {
    const { canonical } = parseAvro(schema);
    const vs = this.versionsOf(subject);
    if (vs.length === 0) throw new RegistryHttpError(404, ERR.subjectNotFound, `Subject '${subject}' not found.`);
    const id = this.idByCanonical.get(canonical);
    const hit = id === undefined ? undefined : vs.find((v) => v.id === id);
    if (!hit) throw new RegistryHttpError(404, ERR.schemaNotFound, 'Schema not found');
    return hit;
  }

  compatibilityLevel(subject?: string): CompatibilityLevel {
    return (subject !== undefined ? this.subjectLevels.get(subject) : undefined) ?? this.globalLevel;
  }

  subjectLevel(subject: string): CompatibilityLevel | undefined {
    return this.subjectLevels.get(subject);
  }

  /** Problems of registering `schema` under `subject` against `version` (or per the level when 'all'). */
  compatibilityProblems(subject: string, schema: string, version: string): string[] {
    const candidate = parseAvro(schema).type;
    const level = this.compatibilityLevel(subject);
    if (version === 'level') {
      return checkCompatibility(
        level,
        candidate,
        this.versionsOf(subject).map((v) => parseAvro(v.schema).type),
      );
    }
    const target = this.getVersion(subject, version);
    const effective: CompatibilityLevel = level.endsWith('_TRANSITIVE') ? (level.replace('_TRANSITIVE', '') as CompatibilityLevel) : level;
    return checkCompatibility(effective, candidate, [parseAvro(target.schema).type]);
  }

  /**
   * Registers `schema` under `subject`: the same schema again gives the existing id and
   * version; a schema known under another subject keeps its global id; an incompatible one is
   * refused with 409. The record is acknowledged by the log before the answer.
   */
  register(subject: string, schema: string): Promise<{ id: number; version: number; created: boolean }> {
    const parsed = parseAvro(schema);
    return this.serialise(async () => {
      // Another registry process may have written since we last looked.
      await this.log.catchUp((r) => this.apply(r));
      const live = this.versionsOf(subject);
      const knownId = this.idByCanonical.get(parsed.canonical);
      const same = knownId === undefined ? undefined : live.find((v) => v.id === knownId);
      if (same) return { id: same.id, version: same.version, created: false };
      const problems = checkCompatibility(
        this.compatibilityLevel(subject),
        parsed.type,
        live.map((v) => parseAvro(v.schema).type),
      );
      if (problems.length > 0) {
        throw new RegistryHttpError(
          409,
          ERR.incompatible,
          `Schema being registered is incompatible with an earlier schema for subject "${subject}" (${this.compatibilityLevel(subject)}): ${problems.join('; ')}`,
        );
      }
      const id = knownId ?? this.maxId + 1;
      const all = this.versionsOf(subject, true);
      const version = (all.length > 0 ? all[all.length - 1]!.version : 0) + 1;
      const text = knownId !== undefined ? this.schemasById.get(knownId)! : schema;
      await this.write({ keytype: 'SCHEMA', subject, version, magic: 1 }, { subject, version, id, schema: text, deleted: false });
      return { id, version, created: true };
    });
  }

  setCompatibility(subject: string | null, level: string): Promise<CompatibilityLevel> {
    if (!isLevel(level))
      throw new RegistryHttpError(422, ERR.invalidCompatibility, `Invalid compatibility level. Valid values are ${COMPATIBILITY_LEVELS.join(', ')}`);
    return this.serialise(async () => {
      await this.write({ keytype: 'CONFIG', subject, magic: 0 }, { compatibilityLevel: level });
      return level;
    });
  }

  deleteSubjectConfig(subject: string): Promise<CompatibilityLevel> {
    const level = this.subjectLevels.get(subject);
    if (!level) throw new RegistryHttpError(404, ERR.subjectLevelConfigNotFound, `Subject '${subject}' does not have subject-level compatibility configured`);
    return this.serialise(async () => {
      await this.write({ keytype: 'CONFIG', subject, magic: 0 }, null);
      return level;
    });
  }

  /**
   * DELETE /subjects/{subject}: soft delete (versions hidden, ids still resolvable) or, with
   * `permanent` after a soft delete, tombstones that compaction removes.
   */
  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.serialise(async () => {
      const all = this.versionsOf(subject, true);
      if (all.length === 0) throw new RegistryHttpError(404, ERR.subjectNotFound, `Subject '${subject}' not found.`);
      if (permanent) {
        if (all.some((v) => !v.deleted)) throw new RegistryHttpError(404, 40405, `Subject '${subject}' was not deleted first before being permanently deleted`);
        for (const v of all) await this.write({ keytype: 'SCHEMA', subject, version: v.version, magic: 1 }, null);
        return all.map((v) => v.version);
      }
      const live = all.filter((v) => !v.deleted);
      if (live.length === 0) throw new RegistryHttpError(404, 40404, `Subject '${subject}' was soft deleted. Set permanent=true to delete permanently`);
      for (const v of live)
        await this.write(
          { keytype: 'SCHEMA', subject, version: v.version, magic: 1 },
          { subject, version: v.version, id: v.id, schema: v.schema, deleted: true },
        );
      return live.map((v) => v.version);
    });
  }
}
