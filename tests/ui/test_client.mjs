// test_client.mjs: unit tests of the dashboard's pure client code (ui/*.js), run with node:
//   node --test tests/ui/test_client.mjs
import assert from 'node:assert/strict';
import test from 'node:test';

import { buildHash, parseHash } from '../../ui/route.js';
import { lineOf, placeViolations, splitPath, violations } from '../../ui/manifest.js';
import { levelRank, matches } from '../../ui/logfilter.js';
import { History, samplesOf, sampleMs } from '../../ui/metrics.js';

test('hash routes round-trip, empty filters leave no trace, keys sorted', () => {
  const h = buildHash(['deployments'], { status: 'running', namespace: 'prod', label: '', q: undefined });
  assert.equal(h, '#/deployments?namespace=prod&status=running');
  const r = parseHash(h);
  assert.deepEqual(r.parts, ['deployments']);
  assert.deepEqual(r.query, { namespace: 'prod', status: 'running' });
  assert.equal(parseHash('').path, '/');
  const d = parseHash(buildHash(['deployments', 'a b/c'], { tab: 'logs', search: 'x&y=z' }));
  assert.deepEqual(d.parts, ['deployments', 'a b/c']);
  assert.equal(d.query.search, 'x&y=z');
});

test('field paths split into keys and indices', () => {
  assert.deepEqual(splitPath('ports[0].published'), ['ports', '[0]', 'published']);
  assert.deepEqual(splitPath('deployments.web.health_checks[2].port'), ['deployments', 'web', 'health_checks', '[2]', 'port']);
});

const lines = {
  deployments: 1, 'deployments.web': 2, 'deployments.web.image': 3, 'deployments.web.ports': 4,
  'deployments.web.ports[0]': 5, 'deployments.web.ports[0].published': 5, 'deployments.web.ports[0].target': 6,
};

test('a violation lands on its field, or on the nearest ancestor the file has', () => {
  assert.deepEqual(lineOf(lines, 'deployments.web', 'ports[0].target'), { line: 6, exact: true });
  assert.deepEqual(lineOf(lines, 'deployments.web', 'ports[0].host_ip'), { line: 5, exact: false });
  assert.deepEqual(lineOf(lines, 'deployments.web', 'memory'), { line: 2, exact: false });
  assert.deepEqual(lineOf(lines, 'deployments.other', 'x'), { line: 1, exact: false });
  assert.equal(lineOf({}, 'deployments.other', 'x'), null);
  assert.equal(lineOf(null, 'deployments.web', 'x'), null);
});

test('422 violations in Ring or husk names are placed', () => {
  const problem = {
    status: 422,
    violations: [
      { field: 'ports[0].published', reason: 'must be 1..65535', property_path: 'ports[0].published', message: 'must be 1..65535' },
      { field: 'replicas', reason: 'must be at least 0' },
      { field: 'manifest', reason: 'did not find expected key', line: 9 },
    ],
  };
  assert.equal(violations(problem).length, 3);
  const placed = placeViolations(lines, 'deployments.web', problem);
  assert.equal(placed[0].line, 5);
  assert.equal(placed[0].exact, true);
  assert.equal(placed[0].path, 'deployments.web.ports[0].published');
  assert.equal(placed[1].line, 2);
  assert.equal(placed[1].exact, false);
  assert.equal(placed[2].line, 9);
  assert.deepEqual(violations(null), []);
});

test('log filter: level at least, search in message and instance', () => {
  assert.ok(levelRank('error') < levelRank('info'));
  const e = { level: 'warning', message: 'Disk almost FULL', instance: 'abc' };
  assert.ok(matches(e, { level: 'warning' }));
  assert.ok(matches(e, { level: 'info' }));
  assert.ok(!matches(e, { level: 'error' }));
  assert.ok(matches(e, { search: 'full' }));
  assert.ok(matches(e, { search: 'ab' }));
  assert.ok(!matches(e, { search: 'nope' }));
  assert.ok(matches({ message: 'x' }, { level: 'info' }), 'no level reads as info');
});

test('metrics: samples found in any envelope, times in any unit, rates from counters, old points dropped', () => {
  const s = (id, ts, rx, cpu) => ({ instance_id: id, ts, cpu_percent: cpu, rss_bytes: 100, network: { rx_bytes: rx, tx_bytes: 0 } });
  assert.equal(samplesOf({ samples: [s('a', 1, 0, 1)] }).length, 1);
  assert.equal(samplesOf({ instances: [{ instance_id: 'a', ts: 1 }] }).length, 1);
  assert.equal(samplesOf([s('a', 1, 0, 1), s('b', 1, 0, 1)]).length, 2);
  assert.equal(sampleMs({ ts: 1700000000 }), 1700000000000);
  assert.equal(sampleMs({ ts: 1700000000000 }), 1700000000000);
  assert.equal(sampleMs({ ts: 1700000000000000000 }), 1700000000000);
  const h = new History(60000);
  const t0 = 1700000000000;
  h.add([s('a', t0, 0, 10)], t0);
  h.add([s('a', t0 + 5000, 5000, 20)], t0 + 5000);
  h.add([s('a', t0 + 10000, 1000, 30)], t0 + 10000); // counter went back: a restart
  assert.deepEqual(h.series('cpu').a.map((p) => p[1]), [10, 20, 30]);
  assert.deepEqual(h.series('net_rx').a, [[t0 + 5000, 1000]]);
  h.add([], t0 + 66000);
  assert.equal(h.series('cpu').a.length, 1);
  h.add([], t0 + 200000);
  assert.deepEqual(h.series('cpu'), {});
});

test('metrics: GET /deployments/{id}/metrics answers in Ring\'s names', () => {
  const answer = {
    deployment_id: 'd', total_cpu_usage_percent: 9, instances: [
      { instance_id: 'a', cpu_usage_percent: 12.5, memory: { usage_bytes: 100, limit_bytes: 1000 }, network: { rx_bytes: 10, tx_bytes: 20 },
        disk_io: { read_bytes: 0, write_bytes: 4096 }, guest: { memory_used_bytes: 50 }, sampled_at: 1700000000000 },
    ],
  };
  const got = samplesOf(answer);
  assert.equal(got.length, 1);
  const h = new History(60000);
  h.add(got, 1700000000000);
  h.add(samplesOf({ instances: [{ ...answer.instances[0], network: { rx_bytes: 1010, tx_bytes: 20 }, sampled_at: 1700000002000 }] }), 1700000002000);
  assert.deepEqual(h.series('cpu').a.map((p) => p[1]), [12.5, 12.5]);
  assert.deepEqual(h.series('memory').a.map((p) => p[1]), [50, 50], 'the guest\'s own view first');
  assert.deepEqual(h.series('net_rx').a, [[1700000002000, 500]]);
});

test('exec command lines split as a shell would group them', async () => {
  const { splitCommand } = await import('../../ui/page_deployment.js');
  assert.deepEqual(splitCommand('cat /etc/hostname'), ['cat', '/etc/hostname']);
  assert.deepEqual(splitCommand(`sh -c 'echo "a b"; ls'`), ['sh', '-c', 'echo "a b"; ls']);
  assert.deepEqual(splitCommand('echo "x \\" y" \'\' z\\ w'), ['echo', 'x " y', '', 'z w']);
  assert.deepEqual(splitCommand('   '), []);
});
