// node-postgres (pg) through the pgseal proxy: parameterised queries, named prepared
// statements, every type, and transactions that fail and recover.
//
// Run by crates/e2e/tests/node_pg.rs with PGSEAL_PROXY_URL, PGSEAL_DIRECT_URL and
// PGSEAL_E2E_MODE (`encrypted` or `plaintext`); the table `vault` is described in
// crates/e2e/tests/common/mod.rs.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import pg from 'pg';

const PROXY_URL = process.env.PGSEAL_PROXY_URL;
const DIRECT_URL = process.env.PGSEAL_DIRECT_URL;
const ENCRYPTED = process.env.PGSEAL_E2E_MODE === 'encrypted';
const CIPHERTEXT_MAGIC = 0xb5;

// Every text result as PostgreSQL printed it, so comparisons are exact and independent of
// the machine's time zone (pg would turn dates into local-time Date objects).
const RAW_TYPES = {
  getTypeParser: (oid, format) =>
    oid === 17 ? pg.types.getTypeParser(oid, format) : (value) => value,
};

// Column -> [pgseal type tag, searchable].
const COLUMNS = {
  c_bool: [1, false],
  c_int2: [2, false],
  c_int4: [3, false],
  c_int8: [4, false],
  c_float4: [5, false],
  c_float8: [6, false],
  c_numeric: [7, false],
  c_text: [8, false],
  c_varchar: [9, false],
  c_bytea: [10, false],
  c_date: [11, false],
  c_time: [12, false],
  c_timestamp: [13, false],
  c_timestamptz: [14, false],
  c_uuid: [15, false],
  c_jsonb: [16, false],
  c_email: [8, true],
  c_phone: [8, true],
};
const NAMES = Object.keys(COLUMNS);

// Values as node sends them (strings, numbers, Buffers, objects) and the text PostgreSQL
// prints back with TimeZone UTC and ISO dates.
const ROWS = [
  {
    id: '1',
    note: 'ordinary',
    send: {
      c_bool: true, c_int2: 12345, c_int4: -2000000000, c_int8: '9007199254740993',
      c_float4: 1.5, c_float8: -0.1, c_numeric: '12345.67890',
      c_text: 'Sun in Leo, Moon in Pisces ☽', c_varchar: 'varchar value',
      c_bytea: Buffer.from([0, 1, 2, 0xb5, 0xff]), c_date: '2024-02-29',
      c_time: '13:45:30.123456', c_timestamp: '1999-12-31 23:59:59.999999',
      c_timestamptz: '2024-07-01T14:00:00+02:00', c_uuid: '123e4567-e89b-12d3-a456-426614174000',
      c_jsonb: { b: [true, null], a: 1.5 }, c_email: 'Ada@Example.com', c_phone: '+44 20 7946 0018',
    },
    text: {
      c_bool: 't', c_int2: '12345', c_int4: '-2000000000', c_int8: '9007199254740993',
      c_float4: '1.5', c_float8: '-0.1', c_numeric: '12345.67890',
      c_text: 'Sun in Leo, Moon in Pisces ☽', c_varchar: 'varchar value',
      c_bytea: Buffer.from([0, 1, 2, 0xb5, 0xff]), c_date: '2024-02-29',
      c_time: '13:45:30.123456', c_timestamp: '1999-12-31 23:59:59.999999',
      c_timestamptz: '2024-07-01 12:00:00+00', c_uuid: '123e4567-e89b-12d3-a456-426614174000',
      c_jsonb: '{"a": 1.5, "b": [true, null]}', c_email: 'Ada@Example.com',
      c_phone: '+44 20 7946 0018',
    },
  },
  {
    id: '2',
    note: 'edges',
    send: {
      c_bool: false, c_int2: -32768, c_int4: 2147483647, c_int8: '-9223372036854775808',
      c_float4: '3.4028235e+38', c_float8: 1e-300, c_numeric: '-0.000100', c_text: '',
      c_varchar: 'ünïcødé 🦀 \'quoted\' "double" \\ back', c_bytea: Buffer.alloc(0),
      c_date: '-infinity', c_time: '24:00:00', c_timestamp: 'infinity',
      c_timestamptz: '-infinity', c_uuid: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
      c_jsonb: JSON.stringify('a "string" with ☃'), c_email: '  MiXeD@Case.ORG ',
      c_phone: '(555) 010-9999',
    },
    text: {
      c_bool: 'f', c_int2: '-32768', c_int4: '2147483647', c_int8: '-9223372036854775808',
      c_float4: '3.4028235e+38', c_float8: '1e-300', c_numeric: '-0.000100', c_text: '',
      c_varchar: 'ünïcødé 🦀 \'quoted\' "double" \\ back', c_bytea: Buffer.alloc(0),
      c_date: '-infinity', c_time: '24:00:00', c_timestamp: 'infinity',
      c_timestamptz: '-infinity', c_uuid: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
      c_jsonb: '"a \\"string\\" with ☃"', c_email: '  MiXeD@Case.ORG ',
      c_phone: '(555) 010-9999',
    },
  },
  {
    id: '3',
    note: 'nulls',
    send: Object.fromEntries(NAMES.map((n) => [n, null])),
    text: Object.fromEntries(NAMES.map((n) => [n, null])),
  },
];

const UPDATES = {
  send: {
    c_text: 'updated text ✓', c_int8: '-42', c_numeric: '0.5', c_date: '1970-01-01',
    c_timestamptz: '2000-01-01 00:00:00.000001+00', c_bytea: Buffer.from('deadbeef', 'hex'),
    c_bool: true, c_email: 'new@example.org',
  },
  text: {
    c_text: 'updated text ✓', c_int8: '-42', c_numeric: '0.5', c_date: '1970-01-01',
    c_timestamptz: '2000-01-01 00:00:00.000001+00', c_bytea: Buffer.from('deadbeef', 'hex'),
    c_bool: 't', c_email: 'new@example.org',
  },
};

const PLACEHOLDERS = Array.from({ length: NAMES.length + 2 }, (_, i) => `$${i + 1}`);
const INSERT = `INSERT INTO vault (id, note, ${NAMES.join(', ')}) VALUES (${PLACEHOLDERS.join(', ')})`;
const SELECT_ROW = `SELECT id, note, ${NAMES.join(', ')} FROM vault WHERE id = $1`;

// structuredClone turns Buffers into plain Uint8Arrays; compare bytes as Buffers.
const bytes = (v) => (v instanceof Uint8Array ? Buffer.from(v) : v);

const insertValues = (row) => [row.id, row.note, ...NAMES.map((n) => row.send[n])];

async function connect(url) {
  const client = new pg.Client({ connectionString: url, types: RAW_TYPES });
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  await client.query("SET DateStyle = 'ISO, MDY'");
  return client;
}

async function assertRows(client, rows) {
  for (const row of rows) {
    const result = await client.query({ name: 'select_row', text: SELECT_ROW, values: [row.id] });
    assert.equal(result.rows.length, 1, `row ${row.id} is missing`);
    const got = result.rows[0];
    assert.equal(got.id, row.id);
    assert.equal(got.note, row.note);
    for (const name of NAMES) {
      assert.deepEqual(bytes(got[name]), bytes(row.text[name]), `row ${row.id} ${name}`);
    }
  }
}

// Straight from PostgreSQL: ciphertext in encrypted mode, the very values otherwise.
async function assertStored(rows) {
  const direct = await connect(DIRECT_URL);
  try {
    for (const row of rows) {
      const { rows: [stored] } = await direct.query(
        `SELECT ${NAMES.join(', ')} FROM vault WHERE id = $1`, [row.id]);
      assert.ok(stored, `row ${row.id} is stored`);
      for (const name of NAMES) {
        const value = stored[name];
        if (row.text[name] === null) {
          assert.equal(value, null, `row ${row.id} ${name} stays NULL`);
        } else if (ENCRYPTED) {
          const [tag, searchable] = COLUMNS[name];
          assert.ok(Buffer.isBuffer(value), `row ${row.id} ${name} is stored as bytea`);
          assert.ok(value.length >= 52, `row ${row.id} ${name}: too short for a ciphertext`);
          assert.equal(value[0], CIPHERTEXT_MAGIC, `row ${row.id} ${name}: not a ciphertext`);
          assert.equal(value[1], 1, `row ${row.id} ${name}: format version`);
          assert.equal(value[2], tag, `row ${row.id} ${name}: type tag`);
          assert.equal(value[3], searchable ? 1 : 0, `row ${row.id} ${name}: index flag`);
        } else {
          assert.deepEqual(bytes(value), bytes(row.text[name]), `row ${row.id} ${name} stored as written`);
        }
      }
    }
  } finally {
    await direct.end();
  }
}

describe('node pg through the pgseal proxy', { skip: !PROXY_URL && 'PGSEAL_PROXY_URL is not set' }, () => {
  let client;

  before(async () => {
    client = await connect(PROXY_URL);
  });

  after(async () => {
    await client?.end();
  });

  beforeEach(async () => {
    const direct = await connect(DIRECT_URL);
    await direct.query('TRUNCATE vault');
    await direct.end();
  });

  test('every type inserts, updates and reads back', async () => {
    const rows = structuredClone(ROWS);
    for (const row of rows) {
      const result = await client.query(INSERT, insertValues(row));
      assert.equal(result.rowCount, 1);
    }
    await assertRows(client, rows);

    const names = Object.keys(UPDATES.send);
    const update = `UPDATE vault SET ${names.map((n, i) => `${n} = $${i + 1}`).join(', ')} `
      + `WHERE id = $${names.length + 1}`;
    for (const row of rows) {
      const result = await client.query({
        name: 'update_row', text: update, values: [...names.map((n) => UPDATES.send[n]), row.id],
      });
      assert.equal(result.rowCount, 1);
      Object.assign(row.send, UPDATES.send);
      Object.assign(row.text, UPDATES.text);
    }
    await assertRows(client, rows);
    await assertStored(rows);
  });

  test('named prepared statements are reused many times', async () => {
    const text = 'INSERT INTO vault (id, note, c_text, c_int8, c_date, c_jsonb, c_email) '
      + 'VALUES ($1, $2, $3, $4, $5, $6, $7)';
    const expected = (i) => ({
      c_text: `prepared ${i} ✓`,
      c_int8: String(BigInt(i) * 1000000007n - 5n),
      c_date: `2001-02-${String(1 + (i % 28)).padStart(2, '0')}`,
      c_jsonb: `{"i": ${i}}`,
      c_email: `user${i}@example.com`,
    });
    for (let i = 0; i < 60; i += 1) {
      const e = expected(i);
      await client.query({
        name: 'q1', text, values: [i, 'prepared', e.c_text, e.c_int8, e.c_date, e.c_jsonb, e.c_email],
      });
    }
    for (let i = 59; i >= 0; i -= 1) {
      const result = await client.query({
        name: 'q2',
        text: 'SELECT c_text, c_int8, c_date, c_jsonb, c_email FROM vault WHERE id = $1',
        values: [i],
      });
      assert.deepEqual({ ...result.rows[0] }, expected(i), `row ${i}`);
    }
    const { rows: [{ count }] } = await client.query('SELECT count(*) FROM vault');
    assert.equal(count, '60');
  });

  test('a failed transaction rolls back and the session recovers', async () => {
    const rows = structuredClone(ROWS);
    await client.query('BEGIN');
    await client.query({ name: 'insert_all', text: INSERT, values: insertValues(rows[0]) });
    await assert.rejects(
      client.query({ name: 'insert_all', text: INSERT, values: insertValues(rows[0]) }),
      (err) => err.code === '23505',
    );
    await assert.rejects(
      client.query('SELECT c_text FROM vault WHERE id = $1', [1]),
      (err) => err.code === '25P02',
    );
    await client.query('ROLLBACK');
    const { rows: [{ count }] } = await client.query('SELECT count(*) FROM vault');
    assert.equal(count, '0');

    await client.query('BEGIN');
    await client.query({ name: 'insert_all', text: INSERT, values: insertValues(rows[0]) });
    await client.query('SAVEPOINT before_failure');
    await assert.rejects(
      client.query('UPDATE vault SET c_int8 = $1 WHERE id = 1 / $2', ['5', 0]),
      (err) => err.code === '22012',
    );
    await client.query('ROLLBACK TO SAVEPOINT before_failure');
    await client.query({ name: 'insert_all', text: INSERT, values: insertValues(rows[1]) });
    await client.query('COMMIT');

    await assertRows(client, rows.slice(0, 2));
    await assertStored(rows.slice(0, 2));
  });
});
