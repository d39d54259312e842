import { type Static, Type } from '@sinclair/typebox';
import { requiredDeviceFields } from '../../domain/device-info.js';
import { BoolOrString, MinorUnits, NumberOrString, StrictObject } from './common.js';

const text = (max: number, description?: string) => Type.String({ maxLength: max, ...(description ? { description } : {}) });
/** src/domain/address.ts decides; what it refuses is 400 invalid_email. */
const EMAIL_DESCRIPTION = 'One address such as jane@example.com: no spaces, control characters, display name or comment, and none of ( ) < > [ ] : ; , \\ " (400 invalid_email).';

export const Name = StrictObject({
  first_name: Type.Optional(text(100)),
  middle_name: Type.Optional(text(100)),
  last_name: Type.Optional(text(100)),
});

const Phone = StrictObject({
  country: Type.Optional(text(4, 'Calling code ("44", "+44") or ISO 3166-1 alpha-2 country.')),
  number: Type.Optional(text(24, '1 to 20 digits, with spaces, hyphens, dots or brackets among them and a + first (or just inside the first bracket) if you like, as in +1 (212) 555-0100 (kept as sent).')),
});

export const PartyDetails = StrictObject({
  name: Type.Optional(Name),
  email: Type.Optional(text(254, EMAIL_DESCRIPTION)),
  phone: Type.Optional(Phone),
  address: Type.Optional(text(200, 'Free-form address line (kept as sent).')),
  line_1_address: Type.Optional(text(200)),
  line_2_address: Type.Optional(text(200)),
  city: Type.Optional(text(100)),
  state: Type.Optional(text(100)),
  postal_code: Type.Optional(text(16)),
  country: Type.Optional(text(2, 'ISO 3166-1 alpha-2 code, e.g. US.')),
});

export const Customer = StrictObject({
  reference: Type.Optional(text(128, "The merchant's own customer id; stored cards are listed under it.")),
  email: Type.Optional(text(254, EMAIL_DESCRIPTION)),
  name: Type.Optional(text(200)),
  phone: Type.Optional(text(24)),
});

export const DeviceInfo = StrictObject(
  {
    type: Type.Optional(Type.Union([Type.Literal('browser'), Type.Literal('app')], { description: 'browser (default) or app (EMV 3DS app-based).' })),
    ip_address: Type.Optional(text(45, 'IPv4 or IPv6 address of the customer.')),
    accept_header: Type.Optional(text(2048)),
    screen_colorDepth: Type.Optional(NumberOrString('Bits per pixel, as `screen.colorDepth` gives it: 1, 4, 8, 15, 16, 24, 32 or 48 (EMV 3DS), or 30 and 36, stored as 24 and 32.')),
    javaEnabled: Type.Optional(BoolOrString('Whether Java is enabled in the browser.')),
    javascriptEnabled: Type.Optional(BoolOrString('Whether JavaScript is enabled in the browser.')),
    language: Type.Optional(text(35, 'BCP 47 language tag as navigator.language gives it, e.g. en-GB or zh-Hant-TW (at most 35 characters, EMV 3DS 2.3).')),
    screenHeight: Type.Optional(NumberOrString('Screen height in pixels.')),
    screenWidth: Type.Optional(NumberOrString('Screen width in pixels.')),
    timezone: Type.Optional(NumberOrString('Offset from UTC in minutes (JavaScript getTimezoneOffset), -840 to 720.')),
    challengeWindow: Type.Optional(NumberOrString('1=250x400, 2=390x400, 3=500x600, 4=600x400, 5=full screen.')),
    userAgent: Type.Optional(text(2048)),
    sdk_app_id: Type.Optional(text(36, 'App: UUID of the 3DS SDK installation.')),
    sdk_trans_id: Type.Optional(text(36, 'App: UUID of this SDK transaction.')),
    sdk_reference_number: Type.Optional(text(32)),
    sdk_max_timeout: Type.Optional(NumberOrString('App: minutes, at least 5.')),
    sdk_enc_data: Type.Optional(text(64000, 'App: JWE of the device data.')),
    sdk_ephem_pub_key: Type.Optional(
      StrictObject({ kty: Type.String({ maxLength: 8 }), crv: Type.String({ maxLength: 16 }), x: Type.String({ maxLength: 128 }), y: Type.String({ maxLength: 128 }) }),
    ),
    device_render_options: Type.Optional(
      StrictObject({
        sdk_interface: Type.Union([Type.Literal('native'), Type.Literal('html'), Type.Literal('both')]),
        sdk_ui_type: Type.Array(Type.Union(['text', 'single_select', 'multi_select', 'oob', 'html_other'].map((v) => Type.Literal(v))), { minItems: 1, maxItems: 5 }),
      }),
    ),
  },
  {
    description:
      'EMV 3-D Secure device data, required for customer-initiated payments. ' +
      `Browser (type "browser", the default) requires ${requiredDeviceFields('browser').join(', ')}; ` +
      `in-app (type "app") requires ${requiredDeviceFields('app').join(', ')}. A missing one is 400 missing_field naming it.`,
  },
);

export const CardMethod = StrictObject(
  {
    type: Type.Literal('card'),
    number: text(23, 'Card number, digits only.'),
    expiry_month: Type.Integer({ description: '1-12' }),
    expiry_year: Type.Integer({ description: 'Four digits, e.g. 2030.' }),
    cvc: Type.Optional(text(4, '3 digits, 4 for American Express.')),
    name: Type.Optional(Name),
    store_for_future_use: Type.Optional(Type.Boolean()),
  },
  { title: 'card' },
);

export const TokenMethod = StrictObject(
  {
    type: Type.Literal('token'),
    token: text(
      64,
      'A stored card token, pm_… (see GET /customers/{reference}/payment-methods). A card stored through a sandbox channel is refused on a live one (422 payment_method_not_live), one stored through a live channel on a sandbox one (422 payment_method_live_only).',
    ),
    cvc: Type.Optional(text(4, 'A fresh CVC for customer-initiated use; never on merchant-initiated payments.')),
  },
  { title: 'token', description: 'A card stored earlier with store_for_future_use. Rules: docs/stored-cards.md.' },
);

/**
 * `oneOf` with a discriminator so a bad card field is reported against the card
 * variant only, not as "matches none of the variants".
 */
export const PaymentMethod = Type.Unsafe<Static<typeof CardMethod> | Static<typeof TokenMethod>>({
  type: 'object',
  discriminator: { propertyName: 'type' },
  required: ['type'],
  oneOf: [CardMethod, TokenMethod],
});

export const PAYMENT_SUB_TYPES = [
  'one-off',
  'recurring-initial',
  'recurring-subsequent',
  'instalment-initial',
  'instalment-subsequent',
  'unscheduled-initial',
  'unscheduled-subsequent',
] as const;
export const INDUSTRY_USAGES = ['none', 'delayed_charge', 'no_show', 'reauthorisation', 'resubmission'] as const;

export const PaymentData = StrictObject({
  payment_type: Type.Optional(Type.Union([Type.Literal('cit'), Type.Literal('mit')], { description: 'cit: customer present; mit: merchant-initiated.' })),
  payment_sub_type: Type.Optional(
    Type.Union(PAYMENT_SUB_TYPES.map((v) => Type.Literal(v)), {
      description: '"-initial" sets up an agreement (cit), "-subsequent" uses it (mit). Default: one-off; unscheduled-initial when storing the card; unscheduled-subsequent for mit.',
    }),
  ),
  credential_on_file: Type.Optional(Type.Boolean({ description: 'The card is (being) stored for later use. Default: true when storing, with a token, and for subsequent mit.' })),
  industry_usage: Type.Optional(Type.Union(INDUSTRY_USAGES.map((v) => Type.Literal(v)), { description: 'mit only: an industry practice charge following one earlier payment.' })),
  previous_network_reference: Type.Optional(text(64, 'mit: the network reference of the initial agreement (may come from another acquirer).')),
  instalments: Type.Optional(
    Type.Integer({
      minimum: 2,
      maximum: 999,
      description: 'instalment-initial only, and required there: the number of payments in the plan, this one included (EMV 3DS purchaseInstalData). Later instalment-subsequent payments beyond it are 422 instalments_exhausted.',
    }),
  ),
  previous_payment_id: Type.Optional(
    text(64, 'mit: the pay_… that set up the agreement (or an earlier mit of it), made with the same card for the same customer (422 initial_payment_card_mismatch, initial_payment_customer_mismatch).'),
  ),
});

// TypeBox drops constraints on a record's key schema, so the key bounds are stated as propertyNames.
export const Metadata = Type.Record(Type.String(), Type.String({ maxLength: 500 }), {
  maxProperties: 50,
  propertyNames: { minLength: 1, maxLength: 40 },
  description: 'Up to 50 keys of at most 40 characters; string values of at most 500 characters.',
});

export const AuthoriseRequest = StrictObject(
  {
    channel: Type.String({ minLength: 1, maxLength: 64, description: 'The channel reference assigned by tZero Pay.' }),
    amount: MinorUnits('Minor units of the currency, at most 999999999999 (the 12 digits card networks carry): 1050 is 10.50 USD, 100 is 100 JPY.'),
    currency: Type.String({ minLength: 3, maxLength: 3, description: 'ISO 4217 code still in use, e.g. USD; a withdrawn one (HRK, SLL, BGN) is 400 invalid_currency, one the channel does not take 422 currency_not_allowed.' }),
    device_info: Type.Optional(DeviceInfo),
    reference: Type.Optional(text(128, 'Your order or transaction reference.')),
    metadata: Type.Optional(Metadata),
    customer: Type.Optional(Customer),
    payment_method: PaymentMethod,
    payment_data: Type.Optional(PaymentData),
    capture: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('manual')], { description: 'auto (default): captured once authorised, or after capture_delay; manual: capture with POST /payment/{id}/capture.' })),
    capture_delay: Type.Optional(text(8, 'With capture "auto": delay before capture, e.g. 30m, 12h, 1d.')),
    billing_details: Type.Optional(PartyDetails),
    shipping_details: Type.Optional(PartyDetails),
    return_url: Type.Optional(text(2048, "One of the channel's registered return URLs; the first one when omitted.")),
  },
  { $id: 'AuthoriseRequest' },
);
export type AuthoriseRequestBody = Static<typeof AuthoriseRequest>;
