import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isIpAddress, normaliseDeviceInfo } from '../../src/domain/device-info.js';

const SPEC_EXAMPLE = {
  ip_address: '1.2.3.4',
  accept_header: 'text/html',
  screen_colorDepth: '48',
  javaEnabled: 'false',
  language: 'en',
  screenHeight: '1200',
  screenWidth: '1600',
  timezone: '60',
  challengeWindow: '4',
  userAgent: 'Mozilla/4.0 (MSIE 6.0; Windows NT 5.0)',
};

const APP_EXAMPLE = {
  type: 'app',
  sdk_app_id: 'dbd64fcb-c19a-4728-8849-e3d50bfdde39',
  sdk_trans_id: 'B1E5A3C2-7F0D-4E6B-9A8C-1D2E3F4A5B6C',
  sdk_reference_number: '3DS_LOA_SDK_PPFU_020100_00007',
  sdk_max_timeout: '05',
  sdk_enc_data: 'eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMTI4R0NNIn0.abc.def.ghi.jkl',
  sdk_ephem_pub_key: {
    kty: 'EC',
    crv: 'P-256',
    x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
    y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
  },
  device_render_options: { sdk_interface: 'both', sdk_ui_type: ['text', 'single_select', 'oob'] },
};

const summary = (input: Record<string, unknown>) =>
  normaliseDeviceInfo(input).errors.map((e) => `${e.pointer} ${e.code}`);

describe('browser device_info', () => {
  it('normalises the spec example', () => {
    assert.deepEqual(normaliseDeviceInfo(SPEC_EXAMPLE), {
      value: {
        type: 'browser',
        ip_address: '1.2.3.4',
        accept_header: 'text/html',
        screen_colorDepth: 48,
        javaEnabled: false,
        language: 'en',
        screenHeight: 1200,
        screenWidth: 1600,
        timezone: 60,
        challengeWindow: 4,
        userAgent: 'Mozilla/4.0 (MSIE 6.0; Windows NT 5.0)',
      },
      errors: [],
    });
  });

  it('takes JSON numbers and booleans as they are', () => {
    const { value, errors } = normaliseDeviceInfo({
      ...SPEC_EXAMPLE,
      type: 'browser',
      ip_address: '2001:db8::1',
      screen_colorDepth: 24,
      javaEnabled: true,
      javascriptEnabled: 'true',
      language: 'en-US',
      screenHeight: 1080,
      screenWidth: 1920,
      timezone: '-60',
      challengeWindow: '05',
    });
    assert.deepEqual(errors, []);
    assert.equal(value?.type, 'browser');
    assert.ok(value?.type === 'browser');
    assert.equal(value.screen_colorDepth, 24);
    assert.equal(value.javaEnabled, true);
    assert.equal(value.javascriptEnabled, true);
    assert.equal(value.timezone, -60);
    assert.equal(value.challengeWindow, 5);
  });

  it('takes the language tags browsers report, longer than 8 characters too (EMV 3DS 2.3: up to 35)', () => {
    for (const language of ['en', 'en-US', 'es-419', 'zh-Hant-TW', 'sr-Latn-RS', 'de-DE-u-co-phonebk', 'en-GB-oxendict']) {
      const { value, errors } = normaliseDeviceInfo({ ...SPEC_EXAMPLE, language });
      assert.deepEqual(errors, [], language);
      assert.ok(value?.type === 'browser');
      assert.equal(value.language, language);
    }
  });

  it('defaults challengeWindow to full screen and treats null as absent', () => {
    const { challengeWindow: _, ...rest } = SPEC_EXAMPLE;
    const value = normaliseDeviceInfo(rest).value;
    assert.ok(value?.type === 'browser');
    assert.equal(value.challengeWindow, 5);
    assert.equal('javascriptEnabled' in value, false);
    const nulled = normaliseDeviceInfo({ ...SPEC_EXAMPLE, challengeWindow: null, javascriptEnabled: null }).value;
    assert.ok(nulled?.type === 'browser');
    assert.equal(nulled.challengeWindow, 5);
  });

  it('names the allowed screen_colorDepth values', () => {
    assert.deepEqual(normaliseDeviceInfo({ ...SPEC_EXAMPLE, screen_colorDepth: '31' }).errors, [
      {
        pointer: '/screen_colorDepth',
        code: 'invalid_device_info',
        message: 'screen_colorDepth must be one of 1, 4, 8, 15, 16, 24, 30, 32, 36, 48 (bits per pixel).',
      },
    ]);
  });

  const BAD_VALUES: [string, unknown, RegExp][] = [
    ['ip_address', '256.1.1.1', /IPv4 or IPv6/],
    ['ip_address', 'localhost', /IPv4 or IPv6/],
    ['accept_header', '', /1 to 2048 characters/],
    ['accept_header', 'x'.repeat(2049), /1 to 2048 characters/],
    ['screen_colorDepth', 24.5, /bits per pixel/],
    ['screen_colorDepth', '24 ', /bits per pixel/],
    ['javaEnabled', 'yes', /true or false/],
    ['javaEnabled', 1, /true or false/],
    ['javascriptEnabled', 'False', /true or false/],
    ['language', 'english-uk', /BCP 47/],
    ['language', 'e', /BCP 47/],
    ['language', 'en_US', /BCP 47/],
    ['language', 'en-', /BCP 47/],
    ['language', 'zh-Hant-TW-x-abcdefgh-abcdefgh-abcdefgh', /at most 35/],
    ['screenHeight', 0, /1 to 999999/],
    ['screenHeight', '1000000', /1 to 999999/],
    ['screenWidth', '12px', /1 to 999999/],
    ['screenWidth', '1e3', /1 to 999999/],
    ['timezone', 721, /-840 to 720/],
    ['timezone', '-841', /-840 to 720/],
    ['timezone', '+60', /-840 to 720/],
    ['challengeWindow', 6, /1 \(250x400\).*5 \(full screen\)/],
    ['challengeWindow', 'full', /1 \(250x400\)/],
    ['userAgent', 42, /User-Agent/],
    ['userAgent', '', /User-Agent/],
  ];
  for (const [field, bad, message] of BAD_VALUES) {
    it(`names ${field} for ${JSON.stringify(bad).slice(0, 20)}`, () => {
      const { value, errors } = normaliseDeviceInfo({ ...SPEC_EXAMPLE, [field]: bad });
      assert.equal(value, undefined);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.pointer, `/${field}`);
      assert.equal(errors[0]?.code, 'invalid_device_info');
      assert.ok(errors[0]?.message.startsWith(`${field} must be `));
      assert.match(errors[0]?.message ?? '', message);
    });
  }

  it('requires the EMV browser fields', () => {
    assert.deepEqual(summary({}), [
      '/ip_address missing_field',
      '/accept_header missing_field',
      '/screen_colorDepth missing_field',
      '/javaEnabled missing_field',
      '/language missing_field',
      '/screenHeight missing_field',
      '/screenWidth missing_field',
      '/timezone missing_field',
      '/userAgent missing_field',
    ]);
    const { userAgent: _, ...rest } = SPEC_EXAMPLE;
    assert.match(normaliseDeviceInfo(rest).errors[0]?.message ?? '', /userAgent is required for browser device_info/);
  });

  it('refuses unknown fields with advice', () => {
    const errors = normaliseDeviceInfo({ ...SPEC_EXAMPLE, screen_color_depth: 24, sdk_app_id: 'x', 'a/b~c': 1 }).errors;
    assert.deepEqual(
      errors.map((e) => `${e.pointer} ${e.code}`),
      ['/screen_color_depth unknown_field', '/sdk_app_id unknown_field', '/a~1b~0c unknown_field'],
    );
    assert.match(errors[0]?.message ?? '', /did you mean "screen_colorDepth"\?/);
    assert.match(errors[1]?.message ?? '', /set "type" to "app"/);
    assert.match(errors[2]?.message ?? '', /the fields are ip_address, accept_header/);
  });

  it('reads only own properties', () => {
    const errors = normaliseDeviceInfo({ ...SPEC_EXAMPLE, constructor: 1, toString: 'x' }).errors;
    assert.deepEqual(
      errors.map((e) => `${e.pointer} ${e.code}`),
      ['/constructor unknown_field', '/toString unknown_field'],
    );
    const proto = JSON.parse('{"__proto__": {"screenHeight": 1}}') as Record<string, unknown>;
    assert.ok(summary(proto).includes('/__proto__ unknown_field'));
    assert.ok(summary(proto).includes('/screenHeight missing_field'));
  });
});

describe('app device_info', () => {
  it('normalises an SDK payload', () => {
    const { value, errors } = normaliseDeviceInfo(APP_EXAMPLE);
    assert.deepEqual(errors, []);
    assert.deepEqual(value, { ...APP_EXAMPLE, type: 'app', sdk_max_timeout: 5 });
  });

  it('keeps the optional ip_address and drops unused JWK members', () => {
    const { value } = normaliseDeviceInfo({
      ...APP_EXAMPLE,
      ip_address: '::ffff:192.0.2.1',
      sdk_ephem_pub_key: { ...APP_EXAMPLE.sdk_ephem_pub_key, kid: 'k1', use: 'enc' },
    });
    assert.ok(value?.type === 'app');
    assert.equal(value.ip_address, '::ffff:192.0.2.1');
    assert.deepEqual(value.sdk_ephem_pub_key, APP_EXAMPLE.sdk_ephem_pub_key);
  });

  const BAD_VALUES: [string, unknown, string, RegExp][] = [
    ['sdk_app_id', 'not-a-uuid', '/sdk_app_id', /UUID/],
    ['sdk_trans_id', 'dbd64fcb-c19a-4728-8849-e3d50bfdde3', '/sdk_trans_id', /UUID/],
    ['sdk_reference_number', 'x'.repeat(33), '/sdk_reference_number', /1 to 32 characters/],
    ['sdk_max_timeout', 4, '/sdk_max_timeout', /from 5 to 99/],
    ['sdk_max_timeout', '100', '/sdk_max_timeout', /from 5 to 99/],
    ['sdk_enc_data', '', '/sdk_enc_data', /1 to 64000 characters/],
    ['sdk_ephem_pub_key', 'key', '/sdk_ephem_pub_key', /JSON Web Key/],
    ['sdk_ephem_pub_key', { kty: 'RSA', crv: 'P-256', x: 'a', y: 'b' }, '/sdk_ephem_pub_key/kty', /"EC"/],
    ['sdk_ephem_pub_key', { kty: 'EC', crv: 'P-256', x: 'a+b', y: 'b' }, '/sdk_ephem_pub_key/x', /base64url/],
    ['device_render_options', [], '/device_render_options', /sdk_interface and sdk_ui_type/],
    ['device_render_options', { sdk_interface: 'web', sdk_ui_type: ['text'] }, '/device_render_options/sdk_interface', /native, html, both/],
    ['device_render_options', { sdk_interface: 'html', sdk_ui_type: [] }, '/device_render_options/sdk_ui_type', /non-empty array/],
    ['device_render_options', { sdk_interface: 'html', sdk_ui_type: ['text', 'webview'] }, '/device_render_options/sdk_ui_type/1', /sdk_ui_type\[1\] must be one of text/],
    ['ip_address', '1.2.3', '/ip_address', /IPv4 or IPv6/],
  ];
  for (const [field, bad, pointer, message] of BAD_VALUES) {
    it(`names ${pointer} for ${JSON.stringify(bad).slice(0, 30)}`, () => {
      const { value, errors } = normaliseDeviceInfo({ ...APP_EXAMPLE, [field]: bad });
      assert.equal(value, undefined);
      assert.deepEqual(errors.map((e) => `${e.pointer} ${e.code}`), [`${pointer} invalid_device_info`]);
      assert.match(errors[0]?.message ?? '', message);
    });
  }

  it('reports nested missing and unknown fields under their parent', () => {
    assert.deepEqual(
      summary({ ...APP_EXAMPLE, sdk_ephem_pub_key: { kty: 'EC' }, device_render_options: { sdk_interface: 'html', extra: 1 } }),
      [
        '/sdk_ephem_pub_key/crv missing_field',
        '/sdk_ephem_pub_key/x missing_field',
        '/sdk_ephem_pub_key/y missing_field',
        '/device_render_options/extra unknown_field',
        '/device_render_options/sdk_ui_type missing_field',
      ],
    );
  });

  it('points browser fields at the type', () => {
    const [e] = normaliseDeviceInfo({ ...APP_EXAMPLE, userAgent: 'Mozilla' }).errors;
    assert.equal(e?.code, 'unknown_field');
    assert.match(e?.message ?? '', /set "type" to "browser"/);
  });
});

it('refuses an unknown type', () => {
  assert.deepEqual(summary({ ...SPEC_EXAMPLE, type: 'tv' }), ['/type invalid_device_info']);
});

describe('isIpAddress', () => {
  it('accepts the usual forms', () => {
    for (const s of ['0.0.0.0', '255.255.255.255', '::', '::1', '1::', '2001:db8::8a2e:370:7334', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', 'FE80::ABCD']) {
      assert.equal(isIpAddress(s), true, s);
    }
  });

  it('refuses the near misses', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', ':::', '1::2::3', ':1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', '1.2.3.4::', '::1.2.3.4:1', 'fe80::1%eth0', ' 1.2.3.4', 'g::1']) {
      assert.equal(isIpAddress(s), false, s);
    }
  });

  it('agrees with node:net for addresses without a zone', () => {
    const ipish = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'), maxLength: 45 });
    const v4 = fc.ipV4();
    const v6 = fc.ipV6();
    fc.assert(
      fc.property(fc.oneof(ipish, v4, v6), (s) => {
        assert.equal(isIpAddress(s), isIP(s) !== 0, s);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('properties', () => {
  it('random objects never throw, and yield a value exactly when there is no error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.object(), fc.dictionary(fc.string(), fc.jsonValue())), (input) => {
        const { value, errors } = normaliseDeviceInfo(input);
        assert.equal(value === undefined, errors.length >= 1);
      }),
    );
  });

  it('a random JSON value in any field is either accepted or named', () => {
    const fields = [...Object.keys(SPEC_EXAMPLE), 'javascriptEnabled', 'type'];
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), (field, raw) => {
        const { value, errors } = normaliseDeviceInfo({ ...SPEC_EXAMPLE, [field]: raw });
        if (value === undefined) assert.ok(errors.some((e) => e.pointer === `/${field}`));
        else assert.deepEqual(errors, []);
      }),
    );
  });

  it('a random JSON value in any app field is either accepted or named under it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(APP_EXAMPLE).filter((k) => k !== 'type')), fc.jsonValue(), (field, raw) => {
        const { value, errors } = normaliseDeviceInfo({ ...APP_EXAMPLE, [field]: raw });
        if (value === undefined) assert.ok(errors.length > 0 && errors.every((e) => e.pointer.startsWith(`/${field}`)));
        else assert.deepEqual(errors, []);
      }),
    );
  });
});
