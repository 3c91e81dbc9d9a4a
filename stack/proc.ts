/**
 * Small helpers for the background processes the stack starts: pid files, liveness, a clean
 * stop (SIGTERM, wait, SIGKILL) and the tail of a log file for error messages.
 */
import { existsSync, readFileSync, rmSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) still answers signal 0.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return true;
  }
}

/** The command line of a live process ('' when unknown), to avoid signalling a reused pid. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    const r = spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '';
  }
}

export function readPidFile(path: string): number | null {
  if (!existsSync(path)) return null;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** The pid in `path` if that process is alive and its command line contains `marker`. */
export function livePid(path: string, marker: string): number | null {
  const pid = readPidFile(path);
  if (pid === null) return null;
  if (!isAlive(pid) || !commandLine(pid).includes(marker)) return null;
  return pid;
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves true when the process is gone. */
export async function stopPid(pid: number, graceMs: number): Promise<{ stopped: boolean; killed: boolean }> {
  if (!isAlive(pid)) return { stopped: true, killed: false };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return { stopped: !isAlive(pid), killed: false };
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return { stopped: true, killed: false };
    await delay(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  for (let i = 0; i < 50 && isAlive(pid); i++) await delay(100);
  return { stopped: !isAlive(pid), killed: true };
}

export function removeFile(path: string): void {
  rmSync(path, { force: true });
}

/** The last `lines` lines of a text file ('' if it does not exist). Reads at most 64 KiB. */
export function tailFile(path: string, lines = 40): string {
  if (!existsSync(path)) return '';
  const size = statSync(path).size;
  const len = Math.min(size, 64 * 1024);
  const buf = Buffer.alloc(len);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, len, size - len);
  } finally {
    closeSync(fd);
  }
  return buf
    .toString('utf8')
    .split('\n')
    .slice(-lines - 1)
    .join('\n')
    .trimEnd();
}
