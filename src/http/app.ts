import { secureRandomBytes } from '../adapters/random.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { finishOpenApi, markRoutesForOpenApi } from './openapi-finish.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import { requestLogger, scrubText } from '../logger.js';
import { DomainError, escapePointer } from '../domain/errors.js';
import { isDatabaseUnavailable } from '../adapters/storage/unavailable.js';
import type { Services } from '../app/services.js';
import { DATABASE_RETRY_AFTER_S, databaseUnavailable, problem, problemTypeBase, sendProblem } from './problem.js';
import { describeJsonError, fromAjv } from './validation-errors.js';
import { validatorCompiler } from './validator-compiler.js';
import { problemOf, textProblemError, textProblemIn, undecodableQueryParameter } from './well-formed-text.js';
import { duplicateNameIn } from './duplicate-names.js';
import { Problem } from './schemas/common.js';
import { healthRoutes } from './plugins/health.js';
import { paymentRoutes } from './plugins/payments.js';
import { lifecycleRoutes } from './plugins/lifecycle.js';
import { answerPageError, answerPageWhileClosing, answerStrayPageRequest, checkoutRoutes } from './plugins/checkout.js';
import { paymentMethodRoutes } from './plugins/payment-methods.js';
import { sandboxRoutes } from './plugins/sandbox.js';
import { webhookEndpointRoutes } from './plugins/webhook-endpoints.js';
import { eventRoutes, wakeDispatcherAfterWrites } from './plugins/events.js';
import { sandboxInboxRoutes } from './plugins/sandbox-inbox.js';
import { docsRoutes } from './plugins/docs.js';
import { complianceRoutes, operatorRoutes } from './plugins/compliance.js';
import { clientAddress, registerAuth } from './auth.js';
import { notFoundPage } from './pages/checkout-page.js';
import { newNonce, securePageHeaders } from './pages/html.js';
import { trackAllowedMethods } from './allowed-methods.js';
import { clientErrorHandler } from './client-errors.js';
import { refuseUnnamedQueryParameters } from './strict-query.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of a JSON body, for idempotency hashing. */
    rawBody?: string;
  }
}

const MAX_PATH_PARAM_LENGTH = 256;

const newRequestId = () => 'req_' + secureRandomBytes(12).toString('hex');

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** What an app serves: the payment API (and the operator's beside it, unless OPERATOR_PORT), or the operator API alone. */
export type AppSurface = 'payments' | 'operator';

/**
 * Builds the gateway's HTTP app without listening, so tests drive it with inject() and
 * the server entry point decides where it listens.
 */
export async function buildApp(services: Services, logger: Logger, surface: AppSurface = 'payments'): Promise<FastifyInstance> {
  // The access log: one line a request, when it is answered, with method, URL (card numbers
  // and page tokens scrubbed by the serialiser), status and time; none when info lines are
  // not written. Every answer counts in the metrics, on either listener: by route template
  // (never the URL, which may hold a card number), method and status.
  const accessLog = logger.isLevelEnabled('info');
  const metrics = services.ctx.metrics;
  const answered = (request: FastifyRequest, reply: FastifyReply, clientClosed = false) => {
    if (accessLog) request.log.info({ req: request, res: reply, remote_address: clientAddress(request), responseTime: reply.elapsedTime, ...(clientClosed ? { client_closed: true } : {}) }, 'request completed');
    metrics.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
  };

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    childLoggerFactory: (parent, bindings, options) => requestLogger(parent as Logger, bindings, options) as FastifyBaseLogger,
    bodyLimit: services.ctx.config.bodyLimitBytes,
    genReqId: newRequestId,
    clientErrorHandler: clientErrorHandler(newRequestId, metrics, problemTypeBase(services.ctx.config.publicUrl)),
    requestIdHeader: false,
    trustProxy: services.ctx.config.trustProxy,
    // Requests that arrive while the gateway closes get our 503 problem (below), not Fastify's JSON.
    return503OnClosing: false,
    // One access-log line a request, written when it is answered (below), not two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify turns Node's limit off by default: a client that sends headers and then
    // stalls its body would hold a connection (and up to a body's bytes) for ever. A whole
    // request gets a minute (the largest, a 10 MB compliance upload, needs ~1.4 Mbit/s);
    // then Node answers 408 and closes the connection.
    requestTimeout: 60_000,
    // Node enforces it when it looks, every 30 s by default: a stalled request lasted up to 90 s.
    // Node answers an HTTP/1.1 request without Host itself, with a bare 400 and no body:
    // the onRequest hook below names the header in a problem instead.
    http: { connectionsCheckingInterval: 5_000, requireHostHeader: false },
    // Path values up to 256 characters reach the routes' schemas, above every parameter's
    // own limit (a customer reference: 128), so a value over its limit gets too_long naming
    // the parameter; longer ones get 414.
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    // Errors Fastify raises before routing (a path that is not valid %-encoding, a path
    // parameter over its length limit) get the API's problem+json too.
    frameworkErrors: (error, request, reply) => {
      // Raised before the hooks that name, log and count every other answer.
      void (reply as unknown as FastifyReply).header('request-id', request.id);
      reply.raw.once('finish', () => answered(request as unknown as FastifyRequest, reply as unknown as FastifyReply));
      // A payment page's URL that cannot be a page's: the customer's browser gets the page's answer.
      if (request.url.startsWith('/pay/')) {
        const nonce = newNonce();
        return void securePageHeaders((reply as unknown as FastifyReply).code(404), nonce).send(notFoundPage(nonce));
      }
      const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      const [code, detail] =
        error.code === 'FST_ERR_BAD_URL'
          ? ['malformed_path', 'the request path is not valid percent-encoded UTF-8']
          : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? ['path_too_long', 'a value in the request path is longer than any identifier of this API']
            : ['bad_request', error.message];
      void sendProblem(reply, problem(request, status, code, detail));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('problemTypeBase', problemTypeBase(services.ctx.config.publicUrl));
  app.setValidatorCompiler(validatorCompiler());
  // Response schemas document the API; handlers send already-serialised JSON.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addSchema(Problem);

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      done(new DomainError(415, 'unsupported_media_type', `send JSON in UTF-8 (got charset "${charset.slice(0, 40)}")`, '/headers/content-type'), undefined);
      return;
    }
    let text: string;
    try {
      // Bytes that are not UTF-8 are refused, not stored as U+FFFD; a leading BOM is dropped.
      text = UTF8.decode(body as Buffer);
    } catch {
      done(new DomainError(400, 'invalid_encoding', 'the request body is not valid UTF-8'), undefined);
      return;
    }
    request.rawBody = text;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      // Only a body that failed to parse is looked at again (trimming copies it).
      const empty = text.trim() === '';
      // A route that takes no body (a DELETE) has none described: an empty one is none, whatever
      // Content-Type a client sends on every request.
      if (empty && (request.routeOptions.config.optionalBody || !request.routeOptions.schema?.body)) {
        done(null, undefined);
        return;
      }
      const why = empty ? 'the request body is empty; send a JSON object' : `the request body is not valid JSON: ${describeJsonError(text, error as Error)}. Comments and trailing commas are not allowed.`;
      done(new DomainError(400, 'invalid_json', why), undefined);
      return;
    }
    const repeated = duplicateNameIn(text, parsed);
    if (repeated !== undefined) {
      const why = `${repeated} is sent twice in its object; send each name once (JSON parsers disagree on which of the two counts)`;
      done(new DomainError(400, 'duplicate_key', why, repeated), undefined);
      return;
    }
    const problem = text.includes('\\u') ? textProblemIn(parsed) : undefined;
    if (problem) {
      done(textProblemError(problem.pointer, problem.kind), undefined);
      return;
    }
    done(null, parsed);
  });
  // JSON only at the root (415 for anything else); the hosted page's plugin adds forms for itself.
  app.removeContentTypeParser('text/plain');
  // Bodies are read as sent, never decoded: a gzip body got "not valid UTF-8", and a plain one
  // labelled gzip was taken, though a proxy or a log reader decodes it as the label says. A
  // coding we do not decode is a 415 with Accept-Encoding (RFC 9110 §8.4, §12.5.3).
  app.addHook('preParsing', (request, reply, payload, done) => {
    const coding = request.headers['content-encoding'];
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (coding === undefined || !hasBody || /^\s*(?:identity)?\s*$/i.test(coding)) return done(null, payload);
    void reply.header('accept-encoding', 'identity');
    done(new DomainError(415, 'unsupported_content_encoding', `send the body uncompressed and without Content-Encoding (got "${coding.slice(0, 40)}")`, '/headers/content-encoding'));
  });

  app.setErrorHandler((error: FastifyError | DomainError, request, reply) => {
    // The page's own routes answer theirs; this is any other URL under /pay/, whose body is read before it is found to be none.
    if (surface === 'payments' && request.url.startsWith('/pay/')) return answerPageError(error, request, reply);
    if (error instanceof DomainError) {
      if (error.status >= 500) request.log.error({ err: error }, 'domain error with server status');
      if (error.retryAfterSeconds !== undefined) void reply.header('retry-after', String(error.retryAfterSeconds));
      return sendProblem(reply, problem(request, error.status, error.code, error.message, error.param, error.extra));
    }
    const fe = error as FastifyError;
    if (fe.validation) {
      const errors = fromAjv(fe.validation, fe.validationContext ?? 'body');
      const first = errors[0];
      return sendProblem(
        reply,
        problem(request, 400, first?.code ?? 'invalid_request', first?.message ?? 'the request is invalid', first?.pointer, {
          errors: errors.map((e) => ({ param: e.pointer, code: e.code, message: e.message })),
        }),
      );
    }
    switch (fe.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, problem(request, 413, 'body_too_large', `the request body is larger than ${services.ctx.config.bodyLimitBytes} bytes`));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(reply, problem(request, 415, 'unsupported_media_type', `send the body as Content-Type: application/json (got "${request.headers['content-type'] ?? 'none'}")`, '/headers/content-type'));
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendProblem(reply, problem(request, 400, 'invalid_json', 'the request body is not valid JSON'));
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return sendProblem(reply, problem(request, 400, 'invalid_content_length', 'Content-Length does not match the body'));
      default:
        break;
    }
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return sendProblem(reply, problem(request, fe.statusCode, 'bad_request', fe.message));
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'database unavailable');
      return sendProblem(reply.header('retry-after', String(DATABASE_RETRY_AFTER_S)), databaseUnavailable(request));
    }
    // Internals (stack, SQL, driver messages) stay in the log, keyed by request id.
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, problem(request, 500, 'internal_error', `something went wrong on our side; quote request_id ${request.id} to support`));
  });

  const allowedMethods = trackAllowedMethods(app as unknown as FastifyInstance, MAX_PATH_PARAM_LENGTH);
  markRoutesForOpenApi(app as unknown as FastifyInstance);
  refuseUnnamedQueryParameters(app as unknown as FastifyInstance);
  app.setNotFoundHandler((request, reply) => {
    const path = scrubText(request.url.split('?')[0]!);
    const allow = allowedMethods(request.url);
    if (surface === 'payments' && request.url.startsWith('/pay/')) return answerStrayPageRequest(request, reply, allow);
    if (allow.length === 0) return sendProblem(reply, problem(request, 404, 'route_not_found', `no route ${request.method} ${path}; see /docs for the API reference`));
    void reply.header('allow', allow.join(', '));
    return sendProblem(reply, problem(request, 405, 'method_not_allowed', `${path} takes ${allow.join(', ')}, not ${request.method}`));
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'tZero Pay API',
        version: '1.0.0',
        description: 'Server-to-server card payments: authorise with card data, redirect the customer to finalise, receive callbacks. Errors are RFC 9457 problem+json, whose `type` is the URL of the code\'s documentation on this gateway (`/errors/{code}`). A path asked with a method it does not take answers 405 with `Allow` (components.responses.MethodNotAllowed).',
      },
      servers: [{ url: services.ctx.config.publicUrl }],
      components: {
        securitySchemes: {
          secretKey: { type: 'apiKey', in: 'header', name: 'X-Secret-Key', description: 'Your secret key: sk_test_ (sandbox) or sk_live_ (live) followed by 32 hex digits; keys made before modes are sk_ and 32 hex digits and act on both.' },
          inboxBasic: { type: 'http', scheme: 'basic', description: 'The sandbox inbox only, for a browser: any user name and your secret key as the password.' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: finishOpenApi(services.ctx.config),
  });

  app.addHook('onResponse', (request, reply, done) => {
    answered(request, reply);
    done();
  });
  // Fastify runs onResponse only for an answer that reached the socket: a merchant that hung up
  // while its payment was written (a client timeout) would leave a payment no log line names.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (reply.raw.destroyed) answered(request, reply, true);
    done(null, payload);
  });

  // A request that reaches a closing gateway (pipelined, or on a connection still busy with
  // another) is refused, not started: nothing may begin that the shutdown could cut short.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const hsts = services.ctx.config.mode === 'live';
  app.addHook('onRequest', (request, reply, done) => {
    // Answers hold payment page links (bearer credentials) and personal data: no cache keeps
    // them unless a route says otherwise. Live mode is HTTPS only (config.ts): browsers are
    // told never to try plain HTTP on this host.
    reply.header('cache-control', 'no-store');
    // The id the access log and any problem carry: a merchant quotes it to support about a success too.
    reply.header('request-id', request.id);
    if (hsts) reply.header('strict-transport-security', 'max-age=31536000');
    // Through the error handlers, so a customer's browser under /pay/ gets a page.
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      return done(new DomainError(400, 'missing_header', 'an HTTP/1.1 request needs a Host header (RFC 9112, section 3.2)', '/headers/host'));
    }
    if (!closing) return done();
    if (surface === 'payments' && request.url.startsWith('/pay/')) return void answerPageWhileClosing(request, reply);
    void sendProblem(
      reply.header('retry-after', '1'),
      problem(request, 503, 'shutting_down', 'this gateway process is shutting down and started nothing for this request: send it again (with the same Idempotency-Key) and another process, or this one restarted, answers'),
    );
  });

  // Path parameters and query values arrive %-decoded: the same text rules as bodies.
  app.addHook('preValidation', (request, _reply, done) => {
    const query = request.url.indexOf('?');
    const undecodable = query === -1 ? undefined : undecodableQueryParameter(request.url.slice(query + 1));
    if (undecodable !== undefined) {
      const name = scrubText(undecodable);
      return done(new DomainError(400, 'invalid_encoding', `the query parameter "${name.slice(0, 60)}" is not valid percent-encoded UTF-8: encode text as UTF-8, and a literal % as %25`, `/querystring/${escapePointer(name)}`));
    }
    for (const [part, values] of [['params', request.params], ['querystring', request.query]] as const) {
      if (!values || typeof values !== 'object') continue;
      for (const [name, value] of Object.entries(values)) {
        // No parameter takes a list: a repeated one (the parser's array) was refused as "must be a
        // whole number" or "a string", which sends the client looking at the value, not the repeat.
        if (Array.isArray(value)) {
          return done(new DomainError(400, 'duplicate_key', `${scrubText(name).slice(0, 60)} is sent more than once; send each query parameter once`, `/${part}/${escapePointer(scrubText(name))}`));
        }
        const kind = typeof value === 'string' ? problemOf(value) : undefined;
        if (kind) return done(textProblemError(`/${part}/${escapePointer(name)}`, kind));
      }
    }
    done();
  });
  registerAuth(app as unknown as FastifyInstance, services);
  wakeDispatcherAfterWrites(app as unknown as FastifyInstance, services);
  await app.register(healthRoutes(services, surface));
  if (surface === 'operator') {
    await app.register(operatorRoutes(services, services.ctx.config.operatorTokens));
    return app as unknown as FastifyInstance;
  }
  await app.register(paymentRoutes(services));
  await app.register(lifecycleRoutes(services));
  await app.register(paymentMethodRoutes(services));
  await app.register(checkoutRoutes(services));
  await app.register(sandboxRoutes(services));
  await app.register(webhookEndpointRoutes(services));
  await app.register(eventRoutes(services));
  await app.register(sandboxInboxRoutes(services));
  await app.register(complianceRoutes(services));
  await app.register(docsRoutes());
  return app as unknown as FastifyInstance;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
