// A WADO-WS client written the way a Node application would use the `soap` package, run by
// tests/test_interop_node.py. It reads a job file, makes the calls it lists through the WSDL the server
// publishes, and writes what it got to files the test checks:
//
//   node client.js job.json
//
//   job.json: {"wsdl": "http://.../wado-ws?wsdl", "out": "/some/dir",
//              "calls": [{"name": "plain", "operation": "ImagingDocumentSource_RetrieveImagingDocumentSet",
//                         "args": {...node-soap arguments...}, "soapHeaders": ["<xml/>", ...] (optional)}]}
//
//   out/<name>/request.xml         the envelope node-soap sent
//   out/<name>/request-headers.json
//   out/<name>/response.xml        the SOAP part of the answer (the first MIME part for MTOM)
//   out/<name>/result.json         the answer as node-soap parsed it
//   out/<name>/documents/<n>.dcm   each DocumentResponse's Document, its xop:Include resolved against the
//                                  MIME parts node-soap collected (node-soap itself leaves the Include as is)
//   out/<name>/documents.json      [{documentUniqueId, newDocumentUniqueId, mimeType, contentId, file}]
//   out/<name>/xpath/<d>-<x>.xml   each XPathResponse of the metadata operation, as text
//   out/<name>/error.json          instead of the above when the call failed: message, HTTP status, body, and
//                                  the SOAP fault as node-soap parsed it

'use strict';

const fs = require('fs');
const path = require('path');
const soap = require('soap');

function write(file, data) {
  fs.mkdirSync(path.dirname(file), {recursive: true});
  fs.writeFileSync(file, data);
}

function asList(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function stripBrackets(id) {
  id = (id || '').trim();
  return id.startsWith('<') && id.endsWith('>') ? id.slice(1, -1) : id;
}

// RFC 2392: a cid: URL is the Content-ID, percent-encoded.
function partFor(href, parts) {
  if (!href || !href.toLowerCase().startsWith('cid:')) return undefined;
  const cid = decodeURIComponent(href.slice(4));
  return parts.find((p) => stripBrackets(p.headers['content-id']) === cid);
}

function saveDocuments(dir, result, parts) {
  const listed = [];
  asList(result && result.DocumentResponse).forEach((response, index) => {
    const include = response.Document && response.Document.Include;
    const href = include && include.attributes && include.attributes.href;
    const part = partFor(href, parts);
    const entry = {
      documentUniqueId: response.DocumentUniqueId,
      newDocumentUniqueId: response.NewDocumentUniqueId || null,
      mimeType: response.mimeType,
      href: href || null,
      contentId: part ? stripBrackets(part.headers['content-id']) : null,
      file: null,
    };
    if (part) {
      entry.file = path.join('documents', `${index}.dcm`);
      write(path.join(dir, entry.file), part.body);
    } else if (typeof response.Document === 'string') {
      // inline base64, should a server not optimize
      entry.file = path.join('documents', `${index}.dcm`);
      write(path.join(dir, entry.file), Buffer.from(response.Document, 'base64'));
    }
    listed.push(entry);
  });
  write(path.join(dir, 'documents.json'), JSON.stringify(listed, null, 1));
}

function saveXPathAnswers(dir, result) {
  asList(result && result.DocumentInformationResponse).forEach((response, d) => {
    const list = response.XPathResponseList;
    asList(list && list.XPathResponse).forEach((answer, x) => {
      const text = typeof answer === 'string' ? answer : (answer && answer.$value) || '';
      write(path.join(dir, 'xpath', `${d}-${x}.xml`), text);
    });
  });
}

async function run(job) {
  const client = await soap.createClientAsync(job.wsdl, {
    forceSoap12Headers: true,       // SOAP 1.2 envelope and application/soap+xml; action="..."
    parseReponseAttachments: true,  // (sic) collect the MIME parts of an MTOM answer
  });
  for (const call of job.calls) {
    const dir = path.join(job.out, call.name);
    fs.mkdirSync(dir, {recursive: true});
    client.clearSoapHeaders();
    // node-soap writes no WS-Addressing itself; an application adds the header blocks it needs.
    for (const header of call.soapHeaders || []) client.addSoapHeader(header);
    try {
      const [result, rawResponse] = await client[`${call.operation}Async`](call.args);
      const parts = (client.lastResponseAttachments && client.lastResponseAttachments.parts) || [];
      write(path.join(dir, 'response.xml'), rawResponse);
      write(path.join(dir, 'result.json'), JSON.stringify(result, null, 1));
      saveDocuments(dir, result, parts);
      saveXPathAnswers(dir, result);
    } catch (err) {
      const response = err.response || {};
      let body = response.data;
      if (Buffer.isBuffer(body)) body = body.toString('utf8');
      write(path.join(dir, 'error.json'), JSON.stringify({
        message: err.message, status: response.status || null, body: body || err.body || null,
        fault: (err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault) || null,
      }, null, 1));
    }
    write(path.join(dir, 'request.xml'), client.lastRequest || '');
    write(path.join(dir, 'request-headers.json'), JSON.stringify(client.lastRequestHeaders || {}, null, 1));
  }
}

run(JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))).catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
