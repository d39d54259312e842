/**
 * The device data EMV 3-D Secure 2.2 needs for frictionless authentication. Merchants
 * collect it with JavaScript (or a 3DS SDK) and often send numbers and booleans as
 * strings, so both spellings are accepted and normalised before they reach the 3DS server.
 */
import { type FieldError, escapePointer, underPointer } from './errors.js';

/** EMV 3DS's browserColorDepth values. */
const COLOR_DEPTHS = [1, 4, 8, 15, 16, 24, 32, 48] as const;
export type ColorDepth = (typeof COLOR_DEPTHS)[number];

/**
 * What wide-gamut (10- and 12-bit) screens report for `screen.colorDepth`, which EMV does not
 * list: refusing them refused those customers' payments outright, and sent as they are they
 * would make an invalid 3DS request. They are taken as the listed value below them.
 */
const DEEPER_THAN_LISTED: Readonly<Record<number, ColorDepth>> = { 30: 24, 36: 32 };
const TAKEN_COLOR_DEPTHS = [...COLOR_DEPTHS, ...Object.keys(DEEPER_THAN_LISTED).map(Number)].sort((a, b) => a - b);

function colorDepth(raw: unknown): ColorDepth | undefined {
  const v = integer(raw);
  if (v === undefined) return undefined;
  return DEEPER_THAN_LISTED[v] ?? COLOR_DEPTHS.find((d) => d === v);
}

const CHALLENGE_WINDOWS = [1, 2, 3, 4, 5] as const;
export type ChallengeWindow = (typeof CHALLENGE_WINDOWS)[number];

const SDK_INTERFACES = ['native', 'html', 'both'] as const;
export type SdkInterface = (typeof SDK_INTERFACES)[number];

const SDK_UI_TYPES = ['text', 'single_select', 'multi_select', 'oob', 'html_other'] as const;
export type SdkUiType = (typeof SDK_UI_TYPES)[number];

export interface BrowserDeviceInfo {
  type: 'browser';
  ip_address: string;
  accept_header: string;
  screen_colorDepth: ColorDepth;
  javaEnabled: boolean;
  javascriptEnabled?: boolean;
  language: string;
  screenHeight: number;
  screenWidth: number;
  /** Minutes from local time to UTC, as `Date.prototype.getTimezoneOffset()` returns them. */
  timezone: number;
  /** 1 = 250x400, 2 = 390x400, 3 = 500x600, 4 = 600x400, 5 = full screen. */
  challengeWindow: ChallengeWindow;
  userAgent: string;
}

/** The EC public key the 3DS SDK generated for this transaction, as a JWK. */
export interface SdkEphemeralPublicKey {
  kty: 'EC';
  crv: string;
  x: string;
  y: string;
}

export interface DeviceRenderOptions {
  sdk_interface: SdkInterface;
  sdk_ui_type: SdkUiType[];
}

export interface AppDeviceInfo {
  type: 'app';
  sdk_app_id: string;
  sdk_trans_id: string;
  sdk_reference_number: string;
  /** Minutes the SDK allows for the whole challenge. */
  sdk_max_timeout: number;
  sdk_enc_data: string;
  sdk_ephem_pub_key: SdkEphemeralPublicKey;
  device_render_options: DeviceRenderOptions;
  ip_address?: string;
}

export type DeviceInfo = BrowserDeviceInfo | AppDeviceInfo;

const IPV4_OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function isIpv4(s: string): boolean {
  const octets = s.split('.');
  return octets.length === 4 && octets.every((o) => IPV4_OCTET.test(o));
}

/**
 * IPv4 dotted quad (no leading zeros, which some stacks read as octal) or IPv6 text form
 * (RFC 4291 section 2.2). Zone indices are refused: they mean nothing outside the host.
 */
export function isIpAddress(s: string): boolean {
  if (isIpv4(s)) return true;
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const compressed = halves.length === 2;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  let count = 0;
  for (const [i, g] of groups.entries()) {
    // An embedded IPv4 address may only end the address, and stands for two groups.
    if (i === groups.length - 1 && !s.endsWith(':') && isIpv4(g)) {
      count += 2;
    } else if (IPV6_GROUP.test(g)) {
      count += 1;
    } else {
      return false;
    }
  }
  return compressed ? count <= 7 : count === 8;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

interface Field<T> {
  required: boolean;
  /** Stands in for an absent value; makes the field optional for the merchant. */
  fallback?: T;
  /** Completes "<field> must be …" in the messages for a bad or a missing value. */
  rule: string;
  /** `label` names the field in messages; error pointers are relative to the field. */
  parse(raw: unknown, label: string): Parsed<T>;
}

type Spec<T> = { [K in keyof T]-?: Field<Exclude<T[K], undefined>> };

type Presence<T> = Pick<Field<T>, 'required' | 'fallback'>;
const REQUIRED = { required: true } as const;
const OPTIONAL = { required: false } as const;

function invalid(label: string, rule: string): FieldError {
  return { pointer: '', code: 'invalid_device_info', message: `${label} must be ${rule}.` };
}

function scalar<T>(presence: Presence<T>, rule: string, convert: (raw: unknown) => T | undefined): Field<T> {
  return {
    ...presence,
    rule,
    parse(raw, label) {
      const value = convert(raw);
      return value === undefined ? { ok: false, errors: [invalid(label, rule)] } : { ok: true, value };
    },
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const text =
  (min: number, max: number) =>
  (raw: unknown): string | undefined =>
    typeof raw === 'string' && raw.length >= min && raw.length <= max ? raw : undefined;

const matching =
  (pattern: RegExp) =>
  (raw: unknown): string | undefined =>
    typeof raw === 'string' && pattern.test(raw) ? raw : undefined;

function integer(raw: unknown): number | undefined {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
  // `+ 0` turns -0 into 0, so "-0" and 0 normalise alike.
  return Number.isSafeInteger(n) ? n + 0 : undefined;
}

const integerIn =
  (min: number, max: number) =>
  (raw: unknown): number | undefined => {
    const n = integer(raw);
    return n !== undefined && n >= min && n <= max ? n : undefined;
  };

const oneOf =
  <T>(allowed: readonly T[], convert: (raw: unknown) => unknown) =>
  (raw: unknown): T | undefined => {
    const v = convert(raw);
    return allowed.find((a) => a === v);
  };

function boolean(raw: unknown): boolean | undefined {
  if (typeof raw === 'boolean') return raw;
  return raw === 'true' ? true : raw === 'false' ? false : undefined;
}

const listed = (values: readonly unknown[]): string => values.join(', ');

interface ObjectRules {
  /** The object as messages name it, e.g. `browser device_info`. */
  name: string;
  /** Turns a field name into its label in messages, e.g. `device_render_options.`. */
  labelPrefix?: string;
  /** The `type` discriminator, accepted alongside the spec's fields. */
  discriminated?: true;
  ignoreUnknown?: true;
  /** The other variant's fields, to point a merchant who mixed them up at `type`. */
  otherVariant?: { type: string; fields: readonly string[] };
}

/** Case, `_` and `-` are the usual slips between `screen_colorDepth` and `screenHeight`. */
const squash = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');


function unknownField(key: string, known: readonly string[], rules: ObjectRules): FieldError {
  const near = known.find((k) => squash(k) === squash(key));
  const other = rules.otherVariant;
  const advice =
    near !== undefined
      ? `did you mean "${near}"?`
      : other?.fields.includes(key)
        ? `it belongs to ${other.type} device_info: set "type" to "${other.type}".`
        : `the fields are ${listed(known)}.`;
  return {
    pointer: `/${escapePointer(key)}`,
    code: 'unknown_field',
    message: `${rules.name} has no field "${key}"; ${advice}`,
  };
}

function readObject<T>(input: Record<string, unknown>, spec: Spec<T>, rules: ObjectRules): Parsed<T> {
  const known = Object.keys(spec);
  const errors: FieldError[] = [];
  if (rules.ignoreUnknown !== true) {
    for (const key of Object.keys(input)) {
      if (known.includes(key) || (rules.discriminated === true && key === 'type')) continue;
      errors.push(unknownField(key, known, rules));
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries<Field<unknown>>(spec)) {
    const label = (rules.labelPrefix ?? '') + name;
    // Own properties only: `constructor` or `toString` must not be read off the prototype.
    const raw = Object.hasOwn(input, name) ? input[name] : undefined;
    // JSON encoders commonly write null for a value they do not have.
    if (raw === undefined || raw === null) {
      if (field.fallback !== undefined) {
        out[name] = field.fallback;
      } else if (field.required) {
        errors.push({
          pointer: `/${name}`,
          code: 'missing_field',
          message: `${label} is required for ${rules.name}; it must be ${field.rule}.`,
        });
      }
      continue;
    }
    const parsed = field.parse(raw, label);
    if (parsed.ok) out[name] = parsed.value;
    else errors.push(...underPointer(`/${name}`, parsed.errors));
  }
  // Every field of the spec was checked above, so `out` has the shape of T.
  return errors.length === 0 ? { ok: true, value: out as T } : { ok: false, errors };
}

const IP_RULE = 'an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7';
const ipAddress = (raw: unknown): string | undefined =>
  typeof raw === 'string' && isIpAddress(raw) ? raw : undefined;

/**
 * A BCP 47 tag as navigator.language gives it (language, script, region, variants,
 * extensions, private use), within EMV 3DS 2.3's 35 characters: 2.2's 8 would refuse
 * browsers that report zh-Hant-TW or de-DE-u-co-phonebk.
 */
const LANGUAGE = /^(?=.{2,35}$)[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?(-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-[A-WYZa-wyz0-9](-[A-Za-z0-9]{2,8})+)*(-[xX](-[A-Za-z0-9]{1,8})+)?$/;
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const UUID_RULE = 'a UUID such as 0f8e2a44-7c1d-4b52-9a51-3d1c0e6b9a27';
const BASE64URL = /^[A-Za-z0-9_-]+$/;

const BROWSER: Spec<Omit<BrowserDeviceInfo, 'type'>> = {
  ip_address: scalar(REQUIRED, IP_RULE, ipAddress),
  accept_header: scalar(REQUIRED, "the browser's Accept header, 1 to 2048 characters", text(1, 2048)),
  screen_colorDepth: scalar(
    REQUIRED,
    `one of ${listed(TAKEN_COLOR_DEPTHS)} (bits per pixel)`,
    colorDepth,
  ),
  javaEnabled: scalar(REQUIRED, 'true or false (navigator.javaEnabled())', boolean),
  javascriptEnabled: scalar(OPTIONAL, 'true or false', boolean),
  language: scalar(
    REQUIRED,
    'a BCP 47 language tag of at most 35 characters (navigator.language), such as en, en-US or zh-Hant-TW',
    matching(LANGUAGE),
  ),
  screenHeight: scalar(REQUIRED, 'an integer from 1 to 999999 (pixels)', integerIn(1, 999_999)),
  screenWidth: scalar(REQUIRED, 'an integer from 1 to 999999 (pixels)', integerIn(1, 999_999)),
  timezone: scalar(
    REQUIRED,
    'the minutes from local time to UTC as new Date().getTimezoneOffset() returns them, from -840 to 720',
    integerIn(-840, 720),
  ),
  challengeWindow: scalar(
    { required: false, fallback: 5 },
    'one of 1 (250x400), 2 (390x400), 3 (500x600), 4 (600x400), 5 (full screen)',
    oneOf(CHALLENGE_WINDOWS, integer),
  ),
  userAgent: scalar(REQUIRED, "the browser's User-Agent header, 1 to 2048 characters", text(1, 2048)),
};

const EPHEMERAL_KEY: Spec<SdkEphemeralPublicKey> = {
  kty: scalar(REQUIRED, '"EC"', (raw) => (raw === 'EC' ? raw : undefined)),
  crv: scalar(REQUIRED, 'the curve name, such as "P-256"', text(1, 64)),
  x: scalar(REQUIRED, 'a base64url string', matching(BASE64URL)),
  y: scalar(REQUIRED, 'a base64url string', matching(BASE64URL)),
};

const UI_TYPES_RULE = `a non-empty array of ${listed(SDK_UI_TYPES)}`;

const uiTypes: Field<SdkUiType[]> = {
  ...REQUIRED,
  rule: UI_TYPES_RULE,
  parse(raw, label) {
    if (!Array.isArray(raw) || raw.length === 0) return { ok: false, errors: [invalid(label, UI_TYPES_RULE)] };
    const value: SdkUiType[] = [];
    const errors: FieldError[] = [];
    for (const [i, item] of raw.entries()) {
      const t = SDK_UI_TYPES.find((u) => u === item);
      if (t === undefined) {
        errors.push({ ...invalid(`${label}[${i}]`, `one of ${listed(SDK_UI_TYPES)}`), pointer: `/${i}` });
      } else {
        value.push(t);
      }
    }
    return errors.length === 0 ? { ok: true, value } : { ok: false, errors };
  },
};

const RENDER_OPTIONS: Spec<DeviceRenderOptions> = {
  sdk_interface: scalar(REQUIRED, `one of ${listed(SDK_INTERFACES)}`, oneOf(SDK_INTERFACES, (raw) => raw)),
  sdk_ui_type: uiTypes,
};

function nested<T>(spec: Spec<T>, rule: string, rules: Omit<ObjectRules, 'name'>): Field<T> {
  return {
    ...REQUIRED,
    rule,
    parse(raw, label) {
      if (!isRecord(raw)) return { ok: false, errors: [invalid(label, rule)] };
      return readObject(raw, spec, { ...rules, name: label });
    },
  };
}

const APP: Spec<Omit<AppDeviceInfo, 'type'>> = {
  sdk_app_id: scalar(REQUIRED, UUID_RULE, matching(UUID)),
  sdk_trans_id: scalar(REQUIRED, UUID_RULE, matching(UUID)),
  sdk_reference_number: scalar(REQUIRED, 'the 3DS SDK reference number, 1 to 32 characters', text(1, 32)),
  // EMV gives sdkMaxTimeout two digits, hence 99.
  sdk_max_timeout: scalar(REQUIRED, 'an integer number of minutes from 5 to 99', integerIn(5, 99)),
  sdk_enc_data: scalar(REQUIRED, 'the JWE the 3DS SDK produced, 1 to 64000 characters', text(1, 64_000)),
  sdk_ephem_pub_key: nested(EPHEMERAL_KEY, 'a JSON Web Key object with kty "EC", crv, x and y', {
    labelPrefix: 'sdk_ephem_pub_key.',
    // Other JWK members (kid, use, ...) do not change the key, and RFC 7517 says to ignore them.
    ignoreUnknown: true,
  }),
  device_render_options: nested(RENDER_OPTIONS, 'an object with sdk_interface and sdk_ui_type', {
    labelPrefix: 'device_render_options.',
  }),
  ip_address: scalar(OPTIONAL, IP_RULE, ipAddress),
};

/** The fields a device_info of each type must have (for the API reference; the rules above decide). */
export function requiredDeviceFields(type: 'browser' | 'app'): string[] {
  return Object.entries<{ required: boolean }>(type === 'browser' ? BROWSER : APP)
    .filter(([, field]) => field.required)
    .map(([name]) => name);
}

export function normaliseDeviceInfo(input: Record<string, unknown>): { value?: DeviceInfo; errors: FieldError[] } {
  const type = Object.hasOwn(input, 'type') ? input['type'] : undefined;
  if (type === undefined || type === null || type === 'browser') {
    const r = readObject(input, BROWSER, {
      name: 'browser device_info',
      discriminated: true,
      otherVariant: { type: 'app', fields: Object.keys(APP) },
    });
    return r.ok ? { value: { type: 'browser', ...r.value }, errors: [] } : { errors: r.errors };
  }
  if (type === 'app') {
    const r = readObject(input, APP, {
      name: 'app device_info',
      discriminated: true,
      otherVariant: { type: 'browser', fields: Object.keys(BROWSER) },
    });
    return r.ok ? { value: { type: 'app', ...r.value }, errors: [] } : { errors: r.errors };
  }
  return {
    errors: [
      {
        pointer: '/type',
        code: 'invalid_device_info',
        message: 'type must be "browser" (the default, for a web checkout) or "app" (for a 3DS SDK in a mobile app).',
      },
    ],
  };
}
