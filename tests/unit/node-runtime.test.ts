/**
 * The tests, and the processes they spawn with process.execPath, run on the Node LTS that
 * scripts/setup.sh provides (scripts/env.sh pins it), not on an older node that started npm:
 * setup links node_modules/.bin/node to it and npm puts node_modules/.bin first on its scripts'
 * PATH. Also checks that the native modules load in this node (built for its ABI).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/env.js';

const pinned = /^STREAMPULSE_NODE_VERSION=(\d+)\.(\d+)\.(\d+)$/m.exec(readFileSync(join(REPO_ROOT, 'scripts/env.sh'), 'utf8'));

describe('Node runtime', () => {
  it('runs the tests on a node at least as new as the pinned major', () => {
    expect(pinned).not.toBeNull();
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(Number(pinned![1]));
  });

  it('node_modules/.bin/node, the node of every npm script, is the node running the tests', () => {
    const v = execFileSync(join(REPO_ROOT, 'node_modules/.bin/node'), ['-p', 'process.version + " " + process.versions.modules'], { encoding: 'utf8' }).trim();
    expect(v).toBe(`${process.version} ${process.versions.modules}`);
  });

  it('loads the native modules in this node', () => {
    const require = createRequire(join(REPO_ROOT, 'package.json'));
    expect(typeof (require('node-rdkafka') as { KafkaConsumer: unknown }).KafkaConsumer).toBe('function');
    expect(() => require('chdb')).not.toThrow();
  });
});
