/**
 * The runner's commit-cycle decisions that depend on time, as pure functions (time injected):
 * whether the consumer has caught up with its log, which partitions' state checkpoints a busy
 * cycle takes, and when an idle cycle runs and how much it takes. runner.ts calls them;
 * tests/unit/cycle-policy.test.ts drives them with a fake clock.
 */

export interface CaughtUpInput {
  /** Records in the assigned partitions beyond the consumer's position (null: not known yet). */
  lag: number | null;
  /** Records in the last fetch, and the most one fetch asks for. */
  fetched: number;
  batch: number;
  /** Records consumed since the last commit cycle. */
  consumed: number;
  /** Log-append time (Kafka timestamp, ms) of the newest record consumed since the last cycle; null: none. */
  newestRecordMs: number | null;
  nowMs: number;
  /** A record at most this old (ms) when consumed means the consumer is caught up (0: offsets only). */
  maxRecordAgeMs: number;
}

/**
 * Caught up: what is left in the log is no more than one cycle consumed (or one batch), by the
 * high watermarks librdkafka caches (while they are not known: a short fetch); or the newest
 * record consumed since the last cycle reached the log at most `maxRecordAgeMs` ago. The second
 * rule keeps a live consumer "caught up" through a stall of a few seconds (a major GC, a slow
 * insert, a checkpoint): without it the backlog the stall leaves (a few seconds of traffic, more
 * than one cycle's worth) reads as "behind", and the next cycles hold back the rows of open
 * windows, so results written at every cycle waited for the backlog to drain. A backlog of old
 * records (a catch-up, a replay) is behind by both rules.
 */
export function isCaughtUp(s: CaughtUpInput): boolean {
  const byOffsets = s.lag === null ? s.fetched < s.batch : s.lag <= Math.max(s.batch, s.consumed);
  if (byOffsets) return true;
  return s.maxRecordAgeMs > 0 && s.newestRecordMs !== null && s.nowMs - s.newestRecordMs <= s.maxRecordAgeMs;
}

/** A partition task as the checkpoint schedule sees it. */
export interface CheckpointSlot {
  /** When its state was last checkpointed (taken), processing time. */
  savedAtMs: number;
}

/**
 * The partitions (of one processor) whose state checkpoint this cycle takes. Each partition is
 * checkpointed once its last one is `spacingMs` old, but a cycle takes at most its share of the
 * partitions, ceil(n × elapsedMs / spacingMs) with `elapsedMs` the time since the cycle before
 * (the oldest first): n partitions saved once per spacing are spread over the cycles instead of
 * all serialized in one (a stop-the-world pause of the main thread that grows with the state, on
 * a large state hundreds of milliseconds every spacing). With small state the spacing is one
 * cycle and every partition is saved at every cycle, as before.
 */
export function dueCheckpoints<T extends CheckpointSlot>(slots: readonly T[], nowMs: number, spacingMs: number, elapsedMs: number): T[] {
  const due = slots.filter((s) => nowMs - s.savedAtMs >= spacingMs);
  if (due.length === 0) return due;
  const share = spacingMs > 0 ? Math.ceil((slots.length * Math.max(0, elapsedMs)) / spacingMs) : slots.length;
  return due.sort((a, b) => a.savedAtMs - b.savedAtMs).slice(0, Math.max(1, share));
}

/**
 * The spacing of state checkpoints: at least `intervalMs`, else `costRatio` × what saving every
 * partition once costs (the sum of each partition's last save: serializing, staging, committing),
 * at most `maxIntervalMs`. Saving then takes about 1/costRatio of the time.
 */
export function checkpointSpacingMs(roundCostMs: number, intervalMs: number, costRatio: number, maxIntervalMs: number): number {
  return Math.max(intervalMs, Math.min(maxIntervalMs, costRatio * roundCostMs));
}

/** Whether an idle commit cycle runs after this fetch (see RunnerOptions.idleCheckpointBudgetMs). */
export interface IdleCycleInput {
  /** Records in the fetch just handled. */
  fetched: number;
  /** Rows, dead letters or records not covered by the last checkpoint taken. */
  unsaved: boolean;
  nowMs: number;
  /** When the last cycle that checkpointed state was taken, and the least time between two such (ms). */
  lastSnapshotMs: number;
  intervalMs: number;
  /** The last idle cycle stopped at its budget with partitions of its round left. */
  cutShort: boolean;
}

/**
 * An empty fetch while something is unsaved is spare time: an idle cycle runs, at most once per
 * `intervalMs` of checkpoints (a trickle of records means a short idle spell after each one),
 * except while the last idle cycle's budget cut its round short: then idle cycles run back to
 * back, one per empty fetch, until the round is complete (a fetch with records pauses the round;
 * the next empty fetch resumes it).
 */
export function idleCycleDue(s: IdleCycleInput): boolean {
  if (s.fetched > 0 || !s.unsaved) return false;
  return s.cutShort || s.nowMs - s.lastSnapshotMs >= s.intervalMs;
}

/** A partition task with unsaved work as an idle cycle sees it. */
export interface IdleSlot {
  /** When its state was last checkpointed (taken), processing time. */
  savedAtMs: number;
  /** What serializing its last checkpoint took on the main thread (ms; 0: none taken yet). */
  freezeMs: number;
  /** The idle round that last took it (0: none). */
  idleRound: number;
}

/**
 * The checkpoints an idle cycle takes: the partitions with unsaved work not yet taken in this idle
 * `round`, the oldest checkpoint first (ties: as given), the first always (a cycle makes progress
 * however large one partition is), then each while the time spent so far (measured with `clockMs`
 * around `take`, which serializes one) plus its expected cost (its last `freezeMs`) stays within
 * `budgetMs`. A partition whose cost is not known yet (0) is taken while time is left, so an
 * unknown cost overshoots the budget by at most one partition. `left`: the partitions of the round
 * not taken (the next idle cycle goes on with them, back to back; none: the round is complete).
 * A round takes each partition once: under live traffic every partition has unsaved work again
 * soon, and a round that went on until nothing is unsaved would never end.
 */
export function takeIdleCheckpoints<T extends IdleSlot>(
  slots: readonly T[],
  round: number,
  budgetMs: number,
  clockMs: () => number,
  take: (slot: T) => void,
): { taken: T[]; left: T[] } {
  const order = slots.filter((s) => s.idleRound !== round).sort((a, b) => a.savedAtMs - b.savedAtMs);
  const t0 = clockMs();
  const taken: T[] = [];
  for (const s of order) {
    if (taken.length > 0 && clockMs() - t0 + s.freezeMs > budgetMs) break;
    take(s);
    taken.push(s);
  }
  return { taken, left: order.slice(taken.length) };
}
