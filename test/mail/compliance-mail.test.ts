import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ComplianceMailInput, renderComplianceMail } from '../../src/adapters/mail/templates.js';
import type { InboxMessage } from '../../src/adapters/mail/eml-inbox.js';
import { DAY_MS } from '../../src/domain/compliance.js';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { dateDaysAgo, declareVolume, expectStatus, LIVE_CHANNEL, startComplianceGateway, upload } from '../compliance/fixtures.js';
import { DIALECTS, type TestGateway } from '../support/gateway.js';
import { MailSink } from '../support/smtp-sink.js';
import { Receiver, registerEndpoint, waitFor } from '../webhooks/support.js';

const OPS = 'ops@shop.example';
const SANDBOX_NOTIFY = 'merchant@sandbox.test';

interface Delivery {
  kind: string;
  recipient: string | null;
  endpoint_id: string | null;
  status: string;
  attempts: Array<{ status_code: number | null }>;
}

async function deliveriesOf(t: TestGateway, type: string): Promise<Delivery[]> {
  const list = (await t.request({ method: 'GET', url: `/events?type=${type}` })).json() as { data: Array<{ id: string }> };
  assert.equal(list.data.length, 1, `one ${type} event`);
  return ((await t.request({ method: 'GET', url: `/events/${list.data[0]!.id}` })).json() as { deliveries: Delivery[] }).deliveries;
}

/** The one way e-mails give a time: `Wed, 31 Mar 2027 14:05 UTC`, its day alone as `Wed, 31 Mar 2027`. */
const mailTime = (iso: string) => `${new Date(iso).toUTCString().slice(0, 22)} UTC`;
const mailDay = (iso: string) => new Date(iso).toUTCString().slice(0, 16);

function assertOneTimeFormat(m: { subject: string; text: string; html: string | null }): void {
  for (const part of [m.subject, m.text, m.html ?? '']) {
    assert.doesNotMatch(part, /GMT|\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}/, 'no RFC 1123 time with seconds, no ISO date');
  }
}

function assertNoCardData(m: { text: string; html: string | null }): void {
  // Ids are left out first: their random hex digits can hold a dozen decimal digits in a row.
  for (const part of [m.text, m.html ?? '']) assert.doesNotMatch(part.replace(/\b[a-z]{2,3}_[0-9a-f]{32}\b/g, '<id>'), /\d{12,}|•••• \d{4}|cvc/i);
}

for (const dialect of DIALECTS) {
  describe(`compliance e-mails over SMTP (${dialect})`, () => {
    let t: TestGateway;
    let sink: MailSink;
    let receiver: Receiver;
    let typed: { id: string; secret: string };
    let everything: { id: string; secret: string };
    let expiresAt: string;

    before(async () => {
      sink = await new MailSink().start();
      receiver = await new Receiver().start();
      t = await startComplianceGateway(dialect, { SMTP_URL: `smtp://127.0.0.1:${sink.port}`, WORKERS: 'true', DISPATCH_POLL_MS: '50' });
      // No compliance type among the live channel's notify_events: the notices go out regardless.
      await t.gateway.services.merchants.updateChannel(LIVE_CHANNEL, { notifyEvents: ['payment.captured'] });
      typed = await registerEndpoint(t, receiver.url, { events: ['compliance.approved', 'compliance.expiring'] });
      everything = await registerEndpoint(t, receiver.url, { events: ['*'] });
      receiver.secrets = [typed.secret, everything.secret];
    });
    after(async () => {
      await t.close();
      await sink.stop();
      await receiver.stop();
    });

    it('e-mails the approval to the live channel\'s notification addresses and calls back subscribed endpoints', async () => {
      await expectStatus(declareVolume(t, 1000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
      await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
      const view = await t.gateway.services.compliance.approve({ who: 'operator:test', from: 'test' }, t.credentials.merchant_id);
      assert.equal(view.status, 'approved');
      expiresAt = view.expires_at!;

      await waitFor('the approval e-mail', () => sink.to(OPS).length >= 1);
      const m: InboxMessage = sink.to(OPS)[0]!.message;
      assert.equal(m.subject, `[Sandbox merchant] PCI DSS compliance approved until ${mailDay(expiresAt)}`);
      for (const expected of ['were reviewed and approved', 'Approved', `until ${mailTime(expiresAt)}`, 'What to do next', 'compliance.approved']) {
        assert.ok(m.text.includes(expected), `text has ${expected}`);
        assert.ok(m.html?.includes(expected), `html has ${expected}`);
      }
      assert.match(m.text, /Missing: +nothing/);
      assert.ok(m.text.includes(`Expires:                    ${mailTime(expiresAt)}`), m.text);
      assert.match(m.text, /^Date: +(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2} UTC\r?$/m);
      assertOneTimeFormat(m);
      // A year from the SAQ, signed 5 days before the approval (annual validation).
      assert.match(m.text, /Days left: +3(59|60)\r?$/m);
      assertNoCardData(m);
      assert.equal(sink.to(SANDBOX_NOTIFY).length, 0, 'the event rides on the live channel, not the sandbox one');

      await waitFor('both callbacks', () => receiver.received.filter((r) => r.type === 'compliance.approved').length === 2);
      const payload = receiver.received.find((r) => r.type === 'compliance.approved')!.payload;
      assert.equal(payload.data.object.status, 'approved');
      assert.equal((payload.data.object as { object?: string }).object, 'compliance');

      await waitFor('the deliveries to be recorded', async () => (await deliveriesOf(t, 'compliance.approved')).every((d) => d.status === 'succeeded'));
      const deliveries = await deliveriesOf(t, 'compliance.approved');
      const emails = deliveries.filter((d) => d.kind === 'email');
      assert.deepEqual(emails.map((d) => d.recipient), [OPS]);
      assert.equal(emails[0]!.attempts[0]!.status_code, 250);
      assert.deepEqual(deliveries.filter((d) => d.kind === 'webhook').map((d) => d.endpoint_id).sort(), [typed.id, everything.id].sort());
    });

    it('sends the 30-day reminder when the reminders loop runs 30 days before expiry', async () => {
      const before = sink.to(OPS).length;
      t.clock.set(Date.parse(expiresAt) - 30 * DAY_MS);
      await t.gateway.workers!.loops.compliance!.tick();

      await waitFor('the reminder e-mail', () => sink.to(OPS).length === before + 1);
      const m = sink.to(OPS).at(-1)!.message;
      assert.equal(m.subject, `[Sandbox merchant] PCI DSS approval expires in 30 days (${mailDay(expiresAt)})`);
      assertOneTimeFormat(m);
      assert.match(m.text, /^Days left: +30\r?$/m);
      assert.ok(m.text.includes('Renew now: upload ASV scan report, Self-Assessment Questionnaire (SAQ) with POST /merchant/compliance/documents'));
      assert.ok(m.html?.includes('Expires in 30 days'));
      assertNoCardData(m);

      await waitFor('the reminder callbacks', () => receiver.received.filter((r) => r.type === 'compliance.expiring').length === 2);
      const reminder = receiver.received.find((r) => r.type === 'compliance.expiring')!.payload;
      assert.equal((reminder.data.object as { days_before_expiry?: number }).days_before_expiry, 30);
      assert.equal(sink.to(SANDBOX_NOTIFY).length, 0);
    });
  });
}

describe('compliance e-mails when the first live channel has no notification addresses (sqlite)', () => {
  it('go to the addresses of another live channel', async () => {
    const sink = await new MailSink().start();
    const t = await startComplianceGateway('sqlite', { SMTP_URL: `smtp://127.0.0.1:${sink.port}`, WORKERS: 'true', DISPATCH_POLL_MS: '50' });
    try {
      const m = t.gateway.services.merchants;
      await m.updateChannel(LIVE_CHANNEL, { notifyEmails: [] });
      await m.createChannel(t.credentials.merchant_id, { reference: 'second-live', name: 'Second Shop', mode: 'live', currencies: ['USD'], returnUrls: ['https://second.example/return'], notifyEmails: ['finance@second.example'] });
      await expectStatus(declareVolume(t, 1000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
      await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
      await t.gateway.services.compliance.approve({ who: 'operator:test', from: 'test' }, t.credentials.merchant_id);
      await waitFor('the approval e-mail', () => sink.to('finance@second.example').length >= 1);
      assert.match(sink.to('finance@second.example')[0]!.message.subject, /PCI DSS compliance approved/);
    } finally {
      await t.close();
      await sink.stop();
    }
  });
});

for (const dialect of DIALECTS) {
  describe(`compliance e-mails of a merchant with several live channels (${dialect})`, () => {
    it("go to every live channel's addresses, once each, and not to the sandbox channel's", async () => {
      const sink = await new MailSink().start();
      const t = await startComplianceGateway(dialect, { SMTP_URL: `smtp://127.0.0.1:${sink.port}`, WORKERS: 'true', DISPATCH_POLL_MS: '50' });
      try {
        await t.gateway.services.merchants.createChannel(t.credentials.merchant_id, {
          reference: 'second-live',
          name: 'Second Shop',
          mode: 'live',
          currencies: ['USD'],
          returnUrls: ['https://second.example/return'],
          notifyEmails: ['finance@second.example', OPS.toUpperCase()],
        });
        await expectStatus(declareVolume(t, 1000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
        await t.gateway.services.compliance.approve({ who: 'operator:test', from: 'test' }, t.credentials.merchant_id);
        await waitFor('the approval e-mails to both live channels', () => sink.to(OPS).length >= 1 && sink.to('finance@second.example').length >= 1);
        await waitFor('the deliveries to be recorded', async () => (await deliveriesOf(t, 'compliance.approved')).every((d) => d.status === 'succeeded'));
        const recipients = (await deliveriesOf(t, 'compliance.approved')).filter((d) => d.kind === 'email').map((d) => d.recipient!.toLowerCase());
        assert.deepEqual(recipients.sort(), ['finance@second.example', OPS]);
        assert.equal(sink.to(SANDBOX_NOTIFY).length, 0);
        // The notice rides one live channel (Live Shop) but is no more that channel's than the other's.
        const [second] = sink.to('finance@second.example');
        assert.match(second!.message.text, /notification address of one of your channels/);
        assert.doesNotMatch(second!.message.text, /Live Shop/, 'tells a Second Shop address it is an address of Live Shop');
      } finally {
        await t.close();
        await sink.stop();
      }
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`compliance callbacks of a merchant with several live channels (${dialect})`, () => {
    it('reach an endpoint filtered to another live channel once, even when nothing else takes the event, and not one filtered to the sandbox channel', async () => {
      const receiver = await new Receiver().start();
      const t = await startComplianceGateway(dialect, { WORKERS: 'true', DISPATCH_POLL_MS: '50' });
      try {
        const m = t.gateway.services.merchants;
        // No live channel has addresses: only the endpoint filtered to the second live channel can take the notice.
        await m.updateChannel(LIVE_CHANNEL, { notifyEmails: [] });
        await m.createChannel(t.credentials.merchant_id, { reference: 'second-live', name: 'Second Shop', mode: 'live', currencies: ['USD'], returnUrls: ['https://second.example/return'], notifyEmails: [] });
        const db = t.gateway.services.ctx.database.db;
        const sandbox = await db.selectFrom('channels').select(['id', 'reference']).where('merchant_id', '=', t.credentials.merchant_id).where('mode', '=', 'sandbox').executeTakeFirstOrThrow();
        const live = await db.selectFrom('channels').select('id').where('reference', '=', LIVE_CHANNEL).executeTakeFirstOrThrow();
        const second = await registerEndpoint(t, receiver.url, { events: ['compliance.approved'], channel: 'second-live' });
        const sandboxed = await registerEndpoint(t, receiver.url, { events: ['compliance.approved'], channel: sandbox.reference });
        receiver.secrets = [second.secret, sandboxed.secret];
        // What the event is written with is decided from the cache: have it hold what it needs.
        const cache = LookupCache.of(t.gateway.services.ctx);
        await waitFor('the cache to hold the endpoints and the live channel', async () => {
          await cache.endpoints(t.credentials.merchant_id);
          await cache.channelById(live.id);
          await new Promise((r) => setTimeout(r, 50));
          return cache.cachedEndpoints(t.credentials.merchant_id) !== undefined && cache.cachedChannelById(live.id) !== undefined;
        });
        await expectStatus(declareVolume(t, 1000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
        await t.gateway.services.compliance.approve({ who: 'operator:test', from: 'test' }, t.credentials.merchant_id);
        await waitFor('the callback', () => receiver.received.some((r) => r.type === 'compliance.approved'), 5000);
        await waitFor('the deliveries to be recorded', async () => (await deliveriesOf(t, 'compliance.approved')).every((d) => d.status === 'succeeded'));
        const deliveries = await deliveriesOf(t, 'compliance.approved');
        assert.deepEqual(deliveries.map((d) => d.endpoint_id), [second.id], 'once, to the endpoint of the other live channel');
        assert.equal(receiver.received.filter((r) => r.type === 'compliance.approved').length, 1);
      } finally {
        await t.close();
        await receiver.stop();
      }
    });
  });
}

describe('compliance notices when the live channel has no notification addresses but the sandbox one has (sqlite)', () => {
  it('still ride the live channel, so an endpoint subscribed to that channel is called back', async () => {
    const receiver = await new Receiver().start();
    const t = await startComplianceGateway('sqlite', { WORKERS: 'true', DISPATCH_POLL_MS: '50' });
    try {
      await t.gateway.services.merchants.updateChannel(LIVE_CHANNEL, { notifyEmails: [] });
      // As webhooks.md tells a merchant to: compliance events ride the live channel.
      const live = await registerEndpoint(t, receiver.url, { events: ['compliance.approved'], channel: LIVE_CHANNEL });
      receiver.secrets = [live.secret];
      await expectStatus(declareVolume(t, 1000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
      await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
      await t.gateway.services.compliance.approve({ who: 'operator:test', from: 'test' }, t.credentials.merchant_id);
      const event = await t.gateway.services.ctx.database.db
        .selectFrom('events')
        .innerJoin('channels', 'channels.id', 'events.channel_id')
        .select('channels.reference')
        .where('events.type', '=', 'compliance.approved')
        .executeTakeFirstOrThrow();
      assert.equal(event.reference, LIVE_CHANNEL, 'not the sandbox channel, whose addresses are a developer\'s');
      await waitFor('the callback', () => receiver.received.some((r) => r.type === 'compliance.approved'));
    } finally {
      await t.close();
      await receiver.stop();
    }
  });
});

describe('compliance e-mail template', () => {
  const occurredAt = '2026-03-01T12:00:00.000Z';
  const input = (eventType: string, compliance: Partial<ComplianceMailInput['compliance']> = {}): ComplianceMailInput => ({
    merchantName: 'Acme Ltd',
    eventType,
    eventId: 'evt_1',
    occurredAt,
    compliance: { status: 'approved', card_data_on_live_channels: 'accepted', expires_at: '2026-03-08T09:30:00.000Z', required_documents: ['asv_scan', 'saq'], missing: [], ...compliance },
  });

  it('tells a rejected merchant why, scrubbed, and that a current approval stands', () => {
    const mail = renderComplianceMail(input('compliance.rejected', { last_review: { outcome: 'rejected', reason: 'scan shows 4242424242424242 in a log' } }));
    assert.equal(mail.subject, '[Acme Ltd] PCI DSS documents rejected');
    assert.match(mail.text, /Reason: +scan shows •••• 4242 in a log/);
    assert.match(mail.text, /current approval stays in force until Sun, 08 Mar 2026 09:30 UTC/);
    assert.ok(!mail.html.includes('4242424242424242'));
    assertOneTimeFormat(mail);
  });

  it('gives the grace period end and the days left when an AOC becomes required', () => {
    const mail = renderComplianceMail(
      input('compliance.aoc_required', {
        missing: [{ item: 'aoc', description: 'Attestation of Compliance (AOC) signed by a QSA' }],
        aoc_required: { grace_period_ends_at: '2026-05-30T12:00:00.000Z' },
      }),
    );
    assert.equal(mail.subject, '[Acme Ltd] PCI DSS: an Attestation of Compliance (AOC) is now required');
    assert.match(mail.text, /Grace period ends: +Sat, 30 May 2026 12:00 UTC/);
    assert.match(mail.text, /Days left: +90\n/);
    assert.match(mail.text, /Missing: +Attestation of Compliance \(AOC\) signed by a QSA/);
    assertOneTimeFormat(mail);
    assert.match(mail.text, /upload Attestation of Compliance \(AOC\) signed by a QSA with POST \/merchant\/compliance\/documents before Sat, 30 May 2026 12:00 UTC/);
  });

  it('says card data is refused once expired, and lists what to upload', () => {
    const mail = renderComplianceMail(
      input('compliance.expired', {
        status: 'expired',
        card_data_on_live_channels: 'refused',
        expires_at: '2026-03-01T11:00:00.000Z',
        missing: [
          { item: 'asv_scan', description: 'ASV scan report' },
          { item: 'saq', description: 'Self-Assessment Questionnaire (SAQ)' },
        ],
      }),
    );
    assert.equal(mail.subject, '[Acme Ltd] PCI DSS approval expired: live channels refuse card data');
    assert.match(mail.text, /Expired: +Sun, 01 Mar 2026 11:00 UTC/);
    assert.match(mail.text, /Card data on live channels: +Refused/);
    assert.doesNotMatch(mail.text, /Days left/);
    assertOneTimeFormat(mail);
    assert.match(mail.text, /Upload ASV scan report, Self-Assessment Questionnaire \(SAQ\) with POST/);
  });

  it('counts a reminder\'s days up to the expiry and escapes HTML', () => {
    const mail = renderComplianceMail(input('compliance.expiring', { days_before_expiry: 7 }));
    assert.equal(mail.subject, '[Acme Ltd] PCI DSS approval expires in 7 days (Sun, 08 Mar 2026)');
    const evil = renderComplianceMail({ ...input('compliance.approved'), merchantName: '<b>Acme</b>\r\nBcc: x@y.z' });
    assert.ok(!evil.html.includes('<b>Acme</b>'));
    assert.ok(!/[\r\n]/.test(evil.subject));
  });
});
