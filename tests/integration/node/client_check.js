// Drives @clickhouse/client (1.x) through chsidecar and prints one JSON line
// per step to stdout: {"step": ..., "ok": true, ...} or {"step": ..., "ok":
// false, "error": ...}. Exits 0 only if every step passed.
//
//   node client_check.js URL TABLE [STREAM_ROWS] [INSERT_ROWS]
//
// URL is the sidecar (http://127.0.0.1:PORT). TABLE is a MergeTree table the
// caller created: (id UInt64, name String). Formats are always explicit:
// ClickHouse 18.16 knows JSONEachRow / TabSeparated, not the client's newer
// defaults (see PROTOCOL.md, "Real clients").
'use strict'

const { createClient, ClickHouseLogLevel } = require('@clickhouse/client')
const crypto = require('crypto')

const [url, table, streamRowsArg, insertRowsArg] = process.argv.slice(2)
if (!url || !table) {
  console.error('usage: node client_check.js URL TABLE [STREAM_ROWS] [INSERT_ROWS]')
  process.exit(2)
}
const STREAM_ROWS = Number(streamRowsArg || 500000)
const INSERT_ROWS = Number(insertRowsArg || 20000)

let failed = 0
function report(step, ok, extra) {
  if (!ok) failed++
  console.log(JSON.stringify({ step, ok, ...extra }))
}

async function step(name, fn) {
  const t0 = Date.now()
  try {
    const extra = (await fn()) || {}
    report(name, true, { ms: Date.now() - t0, ...extra })
  } catch (e) {
    report(name, false, { ms: Date.now() - t0, error: String((e && e.message) || e), code: e && e.code })
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg)
}

async function main() {
  // One client for the stateless steps, shared by concurrent calls as apps do.
  const client = createClient({ url, request_timeout: 60000, log: { level: ClickHouseLogLevel.OFF } })

  await step('ping', async () => {
    const r = await client.ping()
    assert(r.success, `ping failed: ${r.error}`)
  })

  await step('query_json_each_row', async () => {
    const rs = await client.query({
      query: 'SELECT number AS n, toString(number) AS s FROM system.numbers LIMIT 5',
      format: 'JSONEachRow',
    })
    const rows = await rs.json()
    assert(rows.length === 5, `expected 5 rows, got ${rows.length}`)
    assert(String(rows[4].n) === '4' && rows[4].s === '4', `bad row ${JSON.stringify(rows[4])}`)
    return { rows: rows.length }
  })

  await step('insert_many_rows', async () => {
    const values = []
    for (let i = 0; i < INSERT_ROWS; i++) values.push({ id: i, name: `row-${i}` })
    await client.insert({ table, values, format: 'JSONEachRow' })
    // And many small concurrent inserts on the shared client (batched by the
    // sidecar): 50 x 10 rows.
    const small = []
    for (let k = 0; k < 50; k++) {
      const v = []
      for (let j = 0; j < 10; j++) v.push({ id: INSERT_ROWS + k * 10 + j, name: `small-${k}-${j}` })
      small.push(client.insert({ table, values: v, format: 'JSONEachRow' }))
    }
    await Promise.all(small)
    const rs = await client.query({
      query: `SELECT count() AS c, uniqExact(id) AS u FROM ${table}`,
      format: 'JSONEachRow',
    })
    const [row] = await rs.json()
    const want = INSERT_ROWS + 500
    assert(Number(row.c) === want && Number(row.u) === want,
      `expected ${want} rows, got count=${row.c} uniq=${row.u}`)
    return { rows: Number(row.c) }
  })

  await step('stream_large_result', async () => {
    const rs = await client.query({
      query: `SELECT number AS n, 'xxxxxxxxxxxxxxxxxxxx' AS pad FROM system.numbers LIMIT ${STREAM_ROWS}`,
      format: 'JSONEachRow',
    })
    let count = 0
    let sum = 0n
    for await (const chunk of rs.stream()) {
      for (const r of chunk) {
        const o = r.json()
        sum += BigInt(o.n)
        count++
      }
    }
    const want = BigInt(STREAM_ROWS) * BigInt(STREAM_ROWS - 1) / 2n
    assert(count === STREAM_ROWS, `streamed ${count} rows, want ${STREAM_ROWS}`)
    assert(sum === want, `sum ${sum} != ${want}`)
    return { rows: count }
  })

  // A client with a fixed session_id: temporary tables live in the session.
  // Concurrent queries on it must not get code 373 through the sidecar.
  const sessionId = `node-${crypto.randomUUID()}`
  const sclient = createClient({ url, session_id: sessionId, request_timeout: 60000, log: { level: ClickHouseLogLevel.OFF } })

  await step('session_temp_table', async () => {
    await sclient.command({ query: 'CREATE TEMPORARY TABLE tmp_node (x UInt32)' })
    await sclient.command({ query: 'INSERT INTO tmp_node SELECT number FROM system.numbers LIMIT 100' })
    await sclient.insert({ table: 'tmp_node', values: [{ x: 1000 }, { x: 1001 }], format: 'JSONEachRow' })
    // 20 concurrent reads of the temp table on the one session.
    const results = await Promise.all(Array.from({ length: 20 }, () =>
      sclient.query({ query: 'SELECT count() AS c, sum(x) AS s FROM tmp_node', format: 'JSONEachRow' })
        .then((rs) => rs.json())))
    for (const [r] of results) {
      assert(Number(r.c) === 102, `temp table count ${r.c}, want 102`)
      assert(Number(r.s) === 4950 + 2001, `temp table sum ${r.s}`)
    }
    // The temp table is not visible outside the session.
    let leaked = true
    try {
      await client.query({ query: 'SELECT count() FROM tmp_node', format: 'JSONEachRow' }).then((rs) => rs.json())
    } catch (e) {
      leaked = false
    }
    assert(!leaked, 'temporary table visible without the session')
    return { concurrent_queries: results.length }
  })

  await step('session_set_setting', async () => {
    await sclient.command({ query: 'SET max_threads = 3' })
    const rs = await sclient.query({
      query: "SELECT value FROM system.settings WHERE name = 'max_threads'",
      format: 'JSONEachRow',
    })
    const [row] = await rs.json()
    assert(String(row.value) === '3', `max_threads in session = ${row.value}`)
  })

  await sclient.close()
  await client.close()
  return failed
}

main().then((n) => process.exit(n === 0 ? 0 : 1), (e) => {
  console.log(JSON.stringify({ step: 'main', ok: false, error: String(e && e.stack || e) }))
  process.exit(1)
})
