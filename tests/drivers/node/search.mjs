// node-postgres (pg) through the pgseal proxy: equality search on encrypted columns.
//
// Run by crates/e2e/tests/search.rs as `node --test search.mjs` with PGSEAL_PROXY_URL and
// PGSEAL_E2E_MODE (`encrypted` or `plaintext`). Named without `.test.` so that the `node
// --test` run of crates/e2e/tests/node_pg.rs (which counts its own tests) does not pick it up.
// It works on a table of its own, `search_nodes`, and drops it at the end.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';

const PROXY_URL = process.env.PGSEAL_PROXY_URL;
const ENCRYPTED = process.env.PGSEAL_E2E_MODE === 'encrypted';

describe('equality search through the proxy', () => {
  let client;

  before(async () => {
    assert.ok(PROXY_URL, 'PGSEAL_PROXY_URL is set (run through cargo test -p pgseal-e2e)');
    client = new pg.Client({ connectionString: PROXY_URL });
    await client.connect();
    const email = ENCRYPTED ? 'pgseal.email' : 'text';
    const code = ENCRYPTED ? 'pgseal.int4_eq' : 'int4';
    await client.query('DROP TABLE IF EXISTS search_nodes');
    await client.query(
      `CREATE TABLE search_nodes (id int PRIMARY KEY, email ${email}, code ${code})`);
    const rows = [[1, 'ann@example.com', 7], [2, 'bob@example.com', 8],
      [3, 'bob@example.com', null], [4, null, 7]];
    for (const row of rows) {
      await client.query('INSERT INTO search_nodes VALUES ($1, $2, $3)', row);
    }
  });

  after(async () => {
    if (client) {
      await client.query('DROP TABLE IF EXISTS search_nodes');
      await client.end();
    }
  });

  const ids = async (sql, params = [], name = undefined) => {
    const result = await client.query({ text: sql, values: params, name });
    return result.rows.map((r) => r.id);
  };

  test('=, <>, IN, NOT IN, NULL, prepared, two roles', async () => {
    const q = (where) => `SELECT id FROM search_nodes WHERE ${where} ORDER BY id`;
    assert.deepEqual(await ids(q('email = $1'), ['bob@example.com']), [2, 3]);
    assert.deepEqual(await ids(q('email <> $1'), ['bob@example.com']), [1]);
    assert.deepEqual(await ids(q('email = $1'), [null]), []);
    assert.deepEqual(await ids(q('email IN ($1, $2)'), ['ann@example.com', 'x']), [1]);
    assert.deepEqual(await ids(q('email NOT IN ($1, NULL)'), ['ann@example.com']), []);
    assert.deepEqual(await ids(q('code = $1'), [7]), [1, 4]);
    assert.deepEqual(await ids(q('code = 8 OR email = $1'), ['ann@example.com']), [1, 2]);
    // A named prepared statement, executed with several values.
    for (const [email, want] of [['ann@example.com', [1]], ['bob@example.com', [2, 3]]]) {
      assert.deepEqual(await ids(q('email = $1'), [email], 'lookup_by_email'), want);
    }
    const updated = await client.query(
      'UPDATE search_nodes SET email = $1, code = $2 WHERE email = $1', ['bob@example.com', 9]);
    assert.equal(updated.rowCount, 2);
    assert.deepEqual(await ids(q('code = $1'), [9]), [2, 3]);
    const found = await client.query(
      'SELECT id, email FROM search_nodes WHERE email = $1', ['  Ann@Example.COM']);
    assert.deepEqual(found.rows, ENCRYPTED ? [{ id: 1, email: 'ann@example.com' }] : []);
  });
});
