import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';

/**
 * Keeps callbacks from being aimed at our own network. A URL is refused when its host,
 * or any address its name resolves to, lies in a loopback, private, link-local, shared
 * (CGNAT), cloud-metadata, unspecified, multicast or otherwise reserved range. IPv4
 * written as one number, in hex or in octal, and IPv4 inside IPv6 (mapped, NAT64,
 * 6to4) are judged by the IPv4 address they stand for. The sender connects only to
 * addresses this module returned, so a name cannot pass the check and then re-resolve
 * somewhere else (DNS rebinding).
 */
export interface OutboundPolicy {
  /** Sandbox development: loopback and private targets allowed. */
  allowPrivate: boolean;
  /** Live mode: https only. */
  requireHttps: boolean;
}

export type RefusalCode = 'invalid_url' | 'url_scheme_not_allowed' | 'url_address_not_allowed' | 'url_host_unresolvable';

export class TargetRefused extends Error {
  override name = 'TargetRefused';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

type Bytes = readonly number[];

interface Range {
  prefix: Bytes;
  bits: number;
  label: string;
}

function cidr(text: string, label: string): Range {
  const [addr, bits] = text.split('/');
  const prefix = addr!.includes(':') ? parseIPv6(addr!) : parseIPv4(addr!);
  if (!prefix) throw new Error(`bad range ${text}`);
  return { prefix, bits: Number(bits), label };
}

const METADATA = new Set(['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254']);

const V4_RANGES: readonly Range[] = [
  cidr('0.0.0.0/8', 'unspecified'),
  cidr('10.0.0.0/8', 'private'),
  cidr('100.64.0.0/10', 'shared (CGNAT)'),
  cidr('127.0.0.0/8', 'loopback'),
  cidr('169.254.0.0/16', 'link-local'),
  cidr('172.16.0.0/12', 'private'),
  cidr('192.0.0.0/24', 'IETF protocol assignment'),
  cidr('192.0.2.0/24', 'documentation'),
  cidr('192.88.99.0/24', '6to4 relay'),
  cidr('192.168.0.0/16', 'private'),
  cidr('198.18.0.0/15', 'benchmarking'),
  cidr('198.51.100.0/24', 'documentation'),
  cidr('203.0.113.0/24', 'documentation'),
  cidr('224.0.0.0/4', 'multicast'),
  cidr('240.0.0.0/4', 'reserved'),
];

const V6_RANGES: readonly Range[] = [
  cidr('::/128', 'unspecified'),
  cidr('::1/128', 'loopback'),
  cidr('::/96', 'IPv4-compatible (deprecated)'),
  cidr('64:ff9b:1::/48', 'local-use NAT64'),
  cidr('100::/64', 'discard-only'),
  cidr('2001::/32', 'Teredo tunnel'),
  cidr('2001:2::/48', 'benchmarking'),
  cidr('2001:10::/28', 'ORCHID (deprecated)'),
  cidr('2001:20::/28', 'ORCHIDv2'),
  cidr('2001:db8::/32', 'documentation'),
  cidr('3fff::/20', 'documentation'),
  cidr('5f00::/16', 'segment routing (SRv6 SID)'),
  cidr('fc00::/7', 'unique local (private)'),
  cidr('fe80::/10', 'link-local'),
  cidr('fec0::/10', 'site-local'),
  cidr('ff00::/8', 'multicast'),
];

/** IPv6 prefixes that carry an IPv4 address: where it sits in the 16 bytes. */
const EMBEDDED_V4: ReadonlyArray<{ range: Range; offset: number }> = [
  { range: cidr('::ffff:0:0/96', 'IPv4-mapped'), offset: 12 },
  { range: cidr('::ffff:0:0:0/96', 'IPv4-translated'), offset: 12 },
  { range: cidr('64:ff9b::/96', 'NAT64'), offset: 12 },
  { range: cidr('2002::/16', '6to4'), offset: 2 },
];

function inRange(bytes: Bytes, r: Range): boolean {
  if (bytes.length !== r.prefix.length) return false;
  let bits = r.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (r.prefix[i]! & mask)) return false;
  }
  return true;
}

/** Strict dotted quad, as DNS answers give them. */
export function parseIPv4(text: string): Bytes | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    out.push(Number(p));
  }
  return out;
}

/**
 * The forms inet_aton and URL parsers accept: one to four parts, each decimal, `0x` hex
 * or `0`-prefixed octal, the last part filling the remaining bytes (`2130706433`,
 * `0x7f000001`, `0177.0.0.1`, `127.1` are all 127.0.0.1).
 */
export function parseLooseIPv4(text: string): Bytes | null {
  const parts = text.replace(/\.$/, '').split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) n = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9]\d*)$/.test(p)) n = Number(p);
    else return null;
    if (!Number.isSafeInteger(n)) return null;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return null;
  const out = [...nums];
  for (let i = 3 - nums.length; i >= 0; i--) out.push(Math.floor(last / 256 ** i) % 256);
  return out;
}

export function parseIPv6(text: string): Bytes | null {
  let s = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = parseIPv4(v4[1]!);
    if (!b) return null;
    tail = [...b];
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out: number[] = [];
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    const n = parseInt(g, 16);
    out.push(n >> 8, n & 0xff);
  }
  if (tail.length) out.splice(12, 4, ...tail);
  return out;
}

function v4Reason(bytes: Bytes): string | null {
  const text = bytes.join('.');
  if (METADATA.has(text)) return 'cloud metadata';
  return V4_RANGES.find((r) => inRange(bytes, r))?.label ?? null;
}

/**
 * Why an address must not be called, or null for a public one. Accepts dotted quads,
 * the loose IPv4 forms and IPv6 (with or without brackets and zone).
 */
export function blockedReason(address: string): string | null {
  const v4 = parseLooseIPv4(address);
  if (v4) return v4Reason(v4);
  const v6 = parseIPv6(address);
  if (!v6) return null;
  for (const { range, offset } of EMBEDDED_V4) {
    if (inRange(v6, range)) {
      const inner = v4Reason(v6.slice(offset, offset + 4));
      return inner === null ? null : `${inner} (${range.label})`;
    }
  }
  const compact = address.replace(/^\[|\]$/g, '').toLowerCase();
  if (METADATA.has(compact)) return 'cloud metadata';
  return V6_RANGES.find((r) => inRange(v6, r))?.label ?? null;
}

function isIpLiteral(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return isIP(bare) !== 0 || parseLooseIPv4(bare) !== null;
}

function refuseAddress(host: string, address: string, reason: string): never {
  const via = host === address ? '' : ` (${host} resolves to it)`;
  throw new TargetRefused('url_address_not_allowed', `${address} is ${article(reason)} ${reason} address${via}; callbacks only go to public internet addresses`);
}

/** The labels above that start with a vowel sound ("unspecified", "IETF…", "ORCHID"), except "unique local". */
function article(label: string): string {
  return /^(?!uni)[aeiou]/i.test(label) ? 'an' : 'a';
}

/** Syntax, scheme and literal-address checks, no DNS: returns the URL as it will be called. */
export function checkUrl(raw: string, policy: OutboundPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TargetRefused('invalid_url', `"${raw}" is not an absolute URL`);
  }
  const schemes = policy.requireHttps ? ['https:'] : ['https:', 'http:'];
  if (!schemes.includes(url.protocol)) {
    throw new TargetRefused('url_scheme_not_allowed', `the URL must use ${schemes.map((s) => s.slice(0, -1)).join(' or ')}${policy.requireHttps ? ' in live mode' : ''}`);
  }
  if (url.username || url.password) throw new TargetRefused('invalid_url', 'the URL must not contain a user name or password');
  if (url.hash) throw new TargetRefused('invalid_url', 'the URL must not contain a #fragment');
  if (!policy.allowPrivate && isIpLiteral(url.hostname)) {
    const reason = blockedReason(url.hostname);
    // The address without brackets as host too: an IPv6 literal resolves to nothing.
    const bare = url.hostname.replace(/^\[|\]$/g, '');
    if (reason) refuseAddress(bare, bare, reason);
  }
  return url;
}

export type Resolver = (host: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

/**
 * Resolve a host and check every address it has: a name with one public and one
 * private address is refused, since either could be the one connected to.
 */
export async function resolveChecked(host: string, policy: OutboundPolicy, resolver: Resolver = systemResolver): Promise<LookupAddress[]> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) {
    const reason = policy.allowPrivate ? null : blockedReason(bare);
    if (reason) refuseAddress(bare, bare, reason);
    return [{ address: bare, family: isIP(bare) }];
  }
  let addresses: LookupAddress[];
  try {
    addresses = await resolver(bare);
  } catch (error) {
    throw new TargetRefused('url_host_unresolvable', `the host ${bare} could not be resolved (${(error as NodeJS.ErrnoException).code ?? 'DNS error'})`);
  }
  if (addresses.length === 0) throw new TargetRefused('url_host_unresolvable', `the host ${bare} has no addresses`);
  if (!policy.allowPrivate) {
    for (const a of addresses) {
      const reason = blockedReason(a.address);
      if (reason) refuseAddress(bare, a.address, reason);
    }
  }
  return addresses;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request: the socket connects to the addresses checked here and
 * nowhere else.
 */
export function guardedLookup(policy: OutboundPolicy, resolver: Resolver = systemResolver) {
  return (host: string, options: { all?: boolean }, callback: LookupCallback): void => {
    resolveChecked(host, policy, resolver).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (error: TargetRefused) => callback(error, ''),
    );
  };
}
