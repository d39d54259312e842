import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * A slim payment event as the gateway writes it, with placeholder ids: deflate finds
 * most of an event's bytes in here (keys, nulls, status names, the shape of ids and
 * timestamps), so a 1.1 KB body packs to about a tenth. The parts used most sit last,
 * where deflate reaches them with the shortest distances.
 */
const EVENT_BODY_V1 = [
  '{"id":"re_00000000000000000000000000000000","object":"refund","status":"succeeded","failed","amount":0,"currency":"EUR","GBP","reason":"requested_by_customer","fraudulent","duplicate",',
  '"payment.refunded","payment.partially_refunded","refund.failed","payment.voided","payment.expired","payment.declined","payment.failed","payment.capture_failed","payment.canceled",',
  '"decline_code":"insufficient_funds","do_not_honor","expired_card","authentication_failed","decline_message":"","retry_advice":"do_not_retry","retry_later","retry_with_new_details",',
  '"manual","delayed","visa","amex","partially_captured","voided","expired","declined","canceled","authorised","requires_action",',
  '{"id":"evt_00000000000000000000000000000000","object":"event","type":"payment.captured","created_at":"2026-01-01T00:00:00.000Z","sequence":3,"data":{"object":{',
  '"id":"pay_00000000000000000000000000000000","object":"payment","status":"captured","amount":1000,"currency":"USD","amount_captured":1000,"amount_refunded":0,',
  '"channel":"sandbox","reference":"order-1","capture":"auto","capture_delay":null,"capture_at":null,"payment_method":{"type":"card","token":"pm_00000000000000000000000000000000",',
  '"card":{"brand":"mastercard","bin":"222300","last4":"0000","expiry_month":12,"expiry_year":2030,"fingerprint":"0000000000000000000000","name":null}},',
  '"payment_data":null,"customer":null,"billing_details":null,"shipping_details":null,"metadata":null,"decline_code":null,"decline_message":null,"retry_advice":null,',
  '"failure_message":null,"authorisation_code":"000000","network_reference":"MAS000000000000000","initial_network_reference":null,"redirect_url":null,"return_url":null,',
  '"sequence":3,"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","authorised_at":"2026-01-01T00:00:00.000Z","expires_at":null}}}',
  '{"id":"evt_00000000000000000000000000000000","object":"event","type":"payment.created","created_at":"2026-01-01T00:00:00.000Z","sequence":1,"data":{"object":{',
  '"id":"pay_00000000000000000000000000000000","object":"payment","status":"requires_action","amount":1000,"currency":"USD","amount_captured":0,"amount_refunded":0,',
  '"channel":"sandbox","reference":"order-1","capture":"auto","capture_delay":null,"capture_at":null,"payment_method":{"type":"card","token":null,',
  '"card":{"brand":"visa","bin":"411111","last4":"1111","expiry_month":12,"expiry_year":2030,"fingerprint":"0000000000000000000000","name":null}},',
  '"payment_data":null,"customer":null,"billing_details":null,"shipping_details":null,"metadata":null,"decline_code":null,"decline_message":null,"retry_advice":null,',
  '"failure_message":null,"authorisation_code":null,"network_reference":null,"initial_network_reference":null,"redirect_url":null,"return_url":null,',
  '"sequence":1,"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","authorised_at":null,"expires_at":"2026-01-01T00:00:00.000Z"}}}',
].join('');

/**
 * Preset dictionaries by the number a packed value starts with. One in use is never
 * edited (stored values would no longer unpack): a better one gets the next number.
 */
const DICTIONARIES = new Map<number, Buffer>([[1, Buffer.from(EVENT_BODY_V1)]]);

/**
 * Columns that SQLite stores packed, with their dictionary. PostgreSQL keeps them as
 * JSON text: its columns are typed, and the values are read there with SQL too.
 */
export const PACKED_COLUMNS: Readonly<Record<string, Readonly<Record<string, number>>>> = { events: { body: 1 } };

/**
 * JSON text as stored compactly: one byte naming the dictionary, then raw deflate.
 * Costs ~20 µs of CPU, which is why the hot path packs on the SQLite writer thread.
 */
export function packJson(text: string, dictionary: number): Buffer {
  const dict = DICTIONARIES.get(dictionary);
  if (!dict) throw new Error(`no JSON packing dictionary ${dictionary}`);
  const deflated = deflateRawSync(text, { dictionary: dict });
  const out = Buffer.allocUnsafe(deflated.length + 1);
  out[0] = dictionary;
  deflated.copy(out, 1);
  return out;
}

/** A stored JSON value back as text: packed (a blob) or as it was written (text). */
export function unpackJson(value: string | Uint8Array): string {
  if (typeof value === 'string') return value;
  const dict = DICTIONARIES.get(value[0]!);
  if (!dict) throw new Error(`a packed JSON value names dictionary ${value[0]}, which this version does not have`);
  return inflateRawSync(value.subarray(1), { dictionary: dict }).toString('utf8');
}
