import { constants, createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * A slim payment event as the gateway writes it, with placeholder ids: deflate finds
 * most of an event's bytes in here (keys, nulls, status names, the shape of ids and
 * timestamps), so a 1.1 KB body packs to about a sixth. The parts used most sit last,
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
 * A payment's details as authorise writes them (payments.details): the keys, nested
 * objects and usual values of the spec's request, with a browser's device data.
 */
const PAYMENT_DETAILS_V1 = [
  '"decline_message":"","retry_advice":"retry_with_new_details","do_not_retry","retry_later","initial_network_reference":"","pending_capture_amount":0,',
  '"card_name":{"first_name":"","middle_name":"","last_name":""},"capture_delay":"P1D","PT1H",',
  '"device_info":{"type":"app","sdk_interface":"native","sdk_ui_type":["text","single_select","multi_select","oob","html_other"],"sdk_app_id":"","sdk_trans_id":"","sdk_reference_number":"",',
  '"sdk_max_timeout":5,"sdk_enc_data":"","sdk_ephem_pub_key":{"kty":"EC","crv":"P-256","x":"","y":""},"device_render_options":{"sdk_interface":"both","sdk_ui_type":[]},"ip_address":""},',
  '{"payment_data":{"payment_type":"mit","payment_sub_type":"recurring-subsequent","unscheduled","instalment","credential_on_file":false,"industry_usage":"none",',
  '"previous_network_reference":"","previous_payment_id":"pay_00000000000000000000000000000000"},"store_for_future_use":false,"return_url":"https://shop.example.com/checkout/return",',
  '{"payment_data":{"payment_type":"cit","payment_sub_type":"recurring-initial","credential_on_file":true,"industry_usage":"none"},"store_for_future_use":true,',
  '"return_url":"http://127.0.0.1:8080/sandbox/return","customer":{"reference":"","email":"@example.com","name":"","phone":""},',
  '"billing_details":{"email":"@example.com","address":"","city":"","country":"US","line_1_address":"","line_2_address":"","postal_code":"","state":""},',
  '"shipping_details":{"email":"@example.com","address":"","city":"","country":"US","line_1_address":"","line_2_address":"","postal_code":"","state":""},',
  '"metadata":{"key_1":"value_1"},"device_info":{"type":"browser","ip_address":"","accept_header":"text/html,application/xhtml+xml","screen_colorDepth":24,"javaEnabled":false,"language":"en-US",',
  '"screenHeight":1080,"screenWidth":1920,"timezone":-60,"challengeWindow":5,"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}}',
].join('');

/**
 * Preset dictionaries by the number a packed value starts with. One in use is never
 * edited (stored values would no longer unpack): a better one gets the next number.
 */
const DICTIONARIES = new Map<number, Buffer>([
  [1, Buffer.from(EVENT_BODY_V1)],
  [2, Buffer.from(PAYMENT_DETAILS_V1)],
]);

/**
 * Columns that SQLite stores packed, with their dictionary. PostgreSQL keeps them as
 * JSON text: its columns are typed, and the values are read there with SQL too.
 */
export const PACKED_COLUMNS: Readonly<Record<string, Readonly<Record<string, number>>>> = { events: { body: 1 }, payments: { details: 2 } };

/**
 * A packed column's value as `dialect` stores it, for writes that do not go through
 * compileInsert (an UPDATE of the column).
 */
export function storedJson(dialect: 'sqlite' | 'postgres', table: string, column: string, text: string): string | Uint8Array {
  const dictionary = PACKED_COLUMNS[table]?.[column];
  if (dictionary === undefined) throw new Error(`${table}.${column} is not a packed column`);
  return dialect === 'sqlite' ? packJson(text, dictionary) : text;
}

/** Raw zlib streams kept across values, per dictionary (a thread has its own module and so its own). */
const streams = new Map<number, { deflate: KeptStream; inflate: KeptStream }>();

function streamsFor(dictionary: number): { dict: Buffer; deflate: KeptStream; inflate: KeptStream } {
  const dict = DICTIONARIES.get(dictionary);
  if (!dict) throw new Error(`no JSON packing dictionary ${dictionary}`);
  let kept = streams.get(dictionary);
  if (!kept) streams.set(dictionary, (kept = { deflate: new KeptStream(() => createDeflateRaw({ dictionary: dict })), inflate: new KeptStream(() => createInflateRaw({ dictionary: dict })) }));
  return { dict, ...kept };
}

/**
 * Text longer than this (in UTF-16 units) is packed by a stream of its own, so its UTF-8
 * bytes always fit the kept input buffer.
 */
const KEPT_TEXT_MAX = 16 * 1024;
/** 48 KB of text input, 64 KB of output: raw deflate never grows 48 KB past 64 KB. */
const input = Buffer.allocUnsafe(KEPT_TEXT_MAX * 3);
const output = Buffer.allocUnsafe(64 * 1024);

/**
 * JSON text as stored compactly: one byte naming the dictionary, then raw deflate.
 * About 9 µs of CPU a value on a kept stream (22–25 µs with a stream per value), and
 * the hot path packs on the SQLite writer thread.
 */
export function packJson(text: string, dictionary: number): Buffer {
  const { dict, deflate } = streamsFor(dictionary);
  if (text.length <= KEPT_TEXT_MAX) {
    const length = input.write(text);
    const written = deflate.run(input, 0, length, output, 1);
    if (written !== undefined) {
      output[0] = dictionary;
      return Buffer.from(output.subarray(0, 1 + written));
    }
  }
  const deflated = deflateRawSync(text, { dictionary: dict });
  const out = Buffer.allocUnsafe(deflated.length + 1);
  out[0] = dictionary;
  deflated.copy(out, 1);
  return out;
}

/** A stored JSON value back as text: packed (a blob) or as it was written (text). */
export function unpackJson(value: string | Uint8Array): string {
  if (typeof value === 'string') return value;
  if (!DICTIONARIES.has(value[0]!)) throw new Error(`a packed JSON value names dictionary ${value[0]}, which this version does not have`);
  const { dict, inflate } = streamsFor(value[0]!);
  const written = inflate.run(value, 1, value.length - 1, output, 0);
  if (written !== undefined) return output.toString('utf8', 0, written);
  return inflateRawSync(value.subarray(1), { dictionary: dict }).toString('utf8');
}

/** What Node's zlib streams hold and its own sync functions drive; not part of its public API. */
interface StreamInternals {
  _handle?: { writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void; reset(): void } | null;
  _writeState?: Uint32Array;
  destroyed: boolean;
  errored: Error | null;
  on(event: 'error', listener: () => void): unknown;
}

/**
 * One raw zlib stream (and its dictionary's hash chains) reset between values instead of
 * built for each, which is over half of what `deflateRawSync` costs a value this small.
 * Node has no public synchronous call on a stream it keeps open (its sync functions close
 * theirs), so this drives the handle the way they do; where that is not there, or the
 * result does not fit in one call, `run` answers undefined and the caller uses the
 * public function.
 */
class KeptStream {
  private stream: StreamInternals | undefined;

  constructor(private readonly open: () => unknown) {}

  /**
   * Runs `src[from, from + length)` through the stream into `out` from `outAt`, finished:
   * the bytes written, or undefined when the result did not fit or there is no handle.
   * Throws what zlib reports (a corrupt packed value), as the public functions do.
   */
  run(src: Uint8Array, from: number, length: number, out: Buffer, outAt: number): number | undefined {
    const stream = (this.stream ??= this.start());
    const handle = stream._handle;
    const state = stream._writeState;
    if (!handle || !state) return undefined;
    const room = out.length - outAt;
    handle.writeSync(constants.Z_FINISH, src, from, length, out, outAt, room);
    if (stream.destroyed) {
      this.stream = undefined;
      throw stream.errored ?? new Error('zlib failed');
    }
    const outLeft = state[0]!;
    const inLeft = state[1]!;
    handle.reset();
    return outLeft === 0 || inLeft !== 0 ? undefined : room - outLeft;
  }

  private start(): StreamInternals {
    const stream = this.open() as StreamInternals;
    // A zlib error destroys the stream and is emitted later: known here by `destroyed`.
    stream.on('error', () => {});
    return stream;
  }
}
