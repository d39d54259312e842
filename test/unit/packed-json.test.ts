import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { packJson, unpackJson, PACKED_COLUMNS, storedJson } from '../../src/adapters/storage/packed-json.js';
import { compileInsert, sqliteParams } from '../../src/adapters/storage/compiled.js';
import { Kysely, SqliteDialect } from 'kysely';
import SQLite from 'better-sqlite3';
import type { Schema } from '../../src/adapters/storage/schema.js';

/** A captured payment's slim event as the gateway stores it (customer, addresses and metadata left out). */
const event =
  '{"id":"evt_01a219e8a727cc98ff9baae0c1ffc538","object":"event","type":"payment.captured","created_at":"2026-11-26T22:10:06.074Z","sequence":3,"data":{"object":{"id":"pay_01a219e8a727fff953e2c7212c018225","object":"payment","status":"captured","amount":100,"currency":"USD","amount_captured":100,"amount_refunded":0,"channel":"sandbox","reference":"order-ü-€-17","capture":"auto","capture_delay":null,"capture_at":null,"payment_method":{"type":"card","token":null,"card":{"brand":"mastercard","bin":"222300","last4":"3222","expiry_month":12,"expiry_year":2077,"fingerprint":"9thVF_fKrUjduhm3qQ3V1T","name":null}},"payment_data":null,"customer":null,"billing_details":null,"shipping_details":null,"metadata":null,"decline_code":null,"decline_message":null,"retry_advice":null,"failure_message":null,"authorisation_code":"BDD259","network_reference":"MAS117887764312646","initial_network_reference":null,"redirect_url":null,"return_url":null,"sequence":3,"created_at":"2026-11-26T22:10:06.074Z","updated_at":"2026-11-26T22:10:06.074Z","authorised_at":"2026-11-26T22:10:06.074Z","expires_at":null}}}';

/** The details authorise stores for the spec's example request. */
const details =
  '{"payment_data":{"payment_type":"cit","payment_sub_type":"recurring-initial","credential_on_file":true,"industry_usage":"none","previous_network_reference":"scheme_txn_id","previous_payment_id":"internal_payment_id"},"store_for_future_use":true,"return_url":"http://127.0.0.1:8080/sandbox/return","customer":{"reference":"abc123","email":"customer@example.com","name":"customer name","phone":"12"},"billing_details":{"email":"customer@example.com","address":"123 Main St","city":"New York","country":"US","line_1_address":"123 Main St","line_2_address":"Apt 4B","postal_code":"10001","state":"NY"},"shipping_details":{"email":"customer@example.com","address":"123 Main St","city":"New York","country":"US","line_1_address":"123 Main St","line_2_address":"Apt 4B","postal_code":"10001","state":"NY"},"metadata":{"key_1":"value_1","key_2":"value_2"},"device_info":{"type":"browser","ip_address":"1.2.3.4","accept_header":"text/html","screen_colorDepth":48,"javaEnabled":false,"language":"en","screenHeight":1200,"screenWidth":1600,"timezone":60,"challengeWindow":4,"userAgent":"Mozilla/4.0 (MSIE 6.0; Windows NT 5.0)"}}';

describe('packed JSON', () => {
  it('gives back exactly the text it packed, any text', () => {
    assert.equal(unpackJson(packJson(event, PACKED_COLUMNS.events!.body!)), event);
    fc.assert(fc.property(fc.json(), (text) => unpackJson(packJson(text, 1)) === text));
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => unpackJson(packJson(text, 1)) === text));
  });

  it('passes text through, so rows written before packing (and PostgreSQL rows) read the same', () => {
    assert.equal(unpackJson(event), event);
  });

  it('packs an event body and a payment\'s details to a fraction of their JSON', () => {
    const packed = packJson(event, PACKED_COLUMNS.events!.body!);
    assert.equal(packed[0], 1);
    assert.ok(packed.length * 4 < Buffer.byteLength(event), `${packed.length} bytes packed for ${Buffer.byteLength(event)}`);
    const packedDetails = packJson(details, PACKED_COLUMNS.payments!.details!);
    assert.equal(packedDetails[0], 2);
    assert.equal(unpackJson(packedDetails), details);
    assert.ok(packedDetails.length * 3 < Buffer.byteLength(details), `${packedDetails.length} bytes packed for ${Buffer.byteLength(details)}`);
  });

  it('gives updates the stored form of their dialect', () => {
    assert.ok(storedJson('sqlite', 'payments', 'details', details) instanceof Buffer);
    assert.equal(storedJson('postgres', 'payments', 'details', details), details);
    assert.throws(() => storedJson('sqlite', 'payments', 'reference', 'x'), /not a packed column/);
  });

  it('packs the same text to the same bytes whatever was packed before, on either dictionary', () => {
    const first = packJson(details, 2);
    packJson(event, 1);
    packJson('{"other":"text"}', 2);
    assert.deepEqual(packJson(details, 2), packJson(details, 2));
    assert.equal(unpackJson(packJson(details, 2)), details);
    assert.equal(unpackJson(first), details);
  });

  it('packs and unpacks values too big for the kept streams\' buffers', () => {
    const big = JSON.stringify({ metadata: Array.from({ length: 6000 }, (_, i) => `€ value ${i} ${(i * 7919) % 10007}`) });
    assert.ok(big.length > 16 * 1024 && Buffer.byteLength(big) > 64 * 1024);
    assert.equal(unpackJson(packJson(big, 2)), big);
    // Packs small but unpacks past the 64 KB output buffer.
    const repetitive = JSON.stringify({ note: 'x'.repeat(200_000) });
    const packed = packJson(repetitive, 1);
    assert.ok(packed.length < 1000);
    assert.equal(unpackJson(packed), repetitive);
  });

  it('throws for a damaged value, and unpacks the next one as before', () => {
    const packed = packJson(details, 2);
    assert.throws(() => unpackJson(packed.subarray(0, 40)), /unexpected end of file/);
    assert.equal(unpackJson(packed), details);
    assert.equal(unpackJson(packJson(event, 1)), event);
  });

  it('refuses a value naming a dictionary it does not have', () => {
    const packed = packJson(event, 1);
    packed[0] = 99;
    assert.throws(() => unpackJson(packed), /dictionary 99/);
  });

  it('marks packed columns on compiled inserts, and SQLite binds them packed', () => {
    const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
    const row = { id: 'evt_1', merchant_id: 'mer_1', channel_id: 'ch_1', payment_id: null, type: 'payment.created', sequence: 1, created_at: 1, body: event };
    const statement = compileInsert(db, { table: 'events', row });
    assert.deepEqual(statement.pack, [[7, 1]]);
    const bound = sqliteParams(statement, undefined);
    assert.ok(bound[7] instanceof Buffer);
    assert.equal(unpackJson(bound[7] as Buffer), event);
    // The statement itself is untouched: PostgreSQL binds the JSON text.
    assert.equal(statement.params[7], event);
    assert.equal(compileInsert(db, { table: 'merchants', row: { id: 'mer_1', name: 'm', created_at: 1 } }).pack, undefined);
  });
});
