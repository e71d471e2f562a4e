// node-postgres (pg) with pg-copy-streams through the pgseal proxy: COPY into and out of a
// table with encrypted columns.
//
// Run by crates/e2e/tests/copy.rs as `node --test copy.mjs` with PGSEAL_PROXY_URL and
// PGSEAL_DIRECT_URL (encrypted mode only). Named without `.test.` so that the `node --test` run
// of crates/e2e/tests/node_pg.rs (which counts its own tests) does not pick it up. It works on a
// table of its own, `copy_nodes`, and drops it at the end.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

const PROXY_URL = process.env.PGSEAL_PROXY_URL;
const DIRECT_URL = process.env.PGSEAL_DIRECT_URL;

const ROWS = 2000;

function textRows() {
  const lines = [];
  for (let i = 0; i < ROWS; i++) {
    const day = String((i % 28) + 1).padStart(2, '0');
    const email = i % 10 === 0 ? '\\N' : `Person${i}@Example.org`;
    lines.push(`${i}\t${email}\t2001-02-${day}\tnote ${i} with a \\t tab\n`);
  }
  return lines;
}

async function copyIn(client, sql, chunks) {
  await pipeline(Readable.from(chunks), client.query(copyFrom(sql)));
}

async function copyOut(client, sql) {
  const parts = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      parts.push(chunk);
      done();
    },
  });
  await pipeline(client.query(copyTo(sql)), sink);
  return Buffer.concat(parts).toString('utf8');
}

describe('COPY through the proxy with pg-copy-streams', () => {
  let client;
  let direct;

  before(async () => {
    assert.ok(PROXY_URL && DIRECT_URL, 'PGSEAL_PROXY_URL and PGSEAL_DIRECT_URL are set');
    client = new pg.Client({ connectionString: PROXY_URL });
    await client.connect();
    direct = new pg.Client({ connectionString: DIRECT_URL });
    await direct.connect();
    await client.query('SET DateStyle = ISO');
    await client.query('DROP TABLE IF EXISTS copy_nodes');
    await client.query(
      'CREATE TABLE copy_nodes (id int, email pgseal.email, d pgseal.date, note pgseal.text)');
  });

  after(async () => {
    if (client) {
      await client.query('DROP TABLE IF EXISTS copy_nodes');
      await client.end();
    }
    if (direct) {
      await direct.end();
    }
  });

  test('rows copied in are sealed at rest and copied out as they went in', async () => {
    const lines = textRows();
    // Chunks that cut rows and fields anywhere, as a stream from a file would.
    const whole = lines.join('');
    const chunks = [];
    for (let at = 0; at < whole.length; at += 777) {
      chunks.push(whole.slice(at, at + 777));
    }
    await copyIn(client, 'COPY copy_nodes FROM STDIN', chunks);

    const out = await copyOut(client, 'COPY copy_nodes TO STDOUT');
    assert.equal(out, whole);
    const query = await copyOut(
      client, 'COPY (SELECT id, email FROM copy_nodes WHERE id < 3) TO STDOUT WITH (FORMAT csv)');
    assert.equal(query, '0,\n1,Person1@Example.org\n2,Person2@Example.org\n');

    // At rest: ciphertext only, no plaintext of any row.
    const leaked = await direct.query(
      "SELECT count(*)::int AS n FROM copy_nodes WHERE encode(note::bytea, 'escape') LIKE '%note%'"
      + " OR encode(email::bytea, 'escape') ILIKE '%example%'");
    assert.equal(leaked.rows[0].n, 0);
    const sealed = await direct.query(
      'SELECT count(*)::int AS n FROM copy_nodes WHERE get_byte(note::bytea, 0) = 181');
    assert.equal(sealed.rows[0].n, ROWS);
  });

  test('a malformed row fails the COPY and commits none of it', async () => {
    const before = await client.query('SELECT count(*)::int AS n FROM copy_nodes');
    await assert.rejects(
      copyIn(client, 'COPY copy_nodes FROM STDIN',
        ['90001\tok@example.org\t2001-01-01\tfine\n', '90002\tx@example.org\tsecret-day\tx\n']),
      (err) => {
        assert.match(err.code, /^22/);
        assert.ok(!String(err.message).includes('secret'), err.message);
        return true;
      });
    const afterCount = await client.query('SELECT count(*)::int AS n FROM copy_nodes');
    assert.equal(afterCount.rows[0].n, before.rows[0].n);
    // The connection is still usable.
    const one = await client.query('SELECT 1 AS one');
    assert.equal(one.rows[0].one, 1);
  });
});
