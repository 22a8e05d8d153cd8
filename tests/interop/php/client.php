<?php
// A WADO-WS client written the way a PHP application would use ext/soap's SoapClient, run by
// tests/test_interop_php.py:
//
//   php client.php job.json
//
//   job.json: {"wsdl": "http://.../wado-ws?wsdl", "out": "/some/dir",
//              "calls": [{"name": "...", "operation": "ImagingDocumentSource_...", "args": {...},
//                         "client": "plain" | "mtom", "headers": ["<raw header block/>", ...]}]}
//
// SoapClient refuses our WSDL as served: its binding carries <wsaw:UsingAddressing wsdl:required="true"/>,
// and ext/soap rejects every required extension it does not know. Like PHP users do, the script keeps a
// copy with wsdl:required="false" and adds WS-Addressing itself (SoapClient writes none).
//
// ext/soap cannot read MTOM, and every successful answer of the server is multipart/related. "plain" calls
// use SoapClient as it is; "mtom" calls use WadowsMtomClient below, whose __doRequest hands SoapClient the
// root part with each xop:Include replaced by the base64 of the part it names (the XOP Infoset).
//
// Written to out/: wsdl.json (what became of the WSDL as served), and per call out/<name>/:
//   request.xml, request-headers.txt, response-headers.txt, response.txt (as SoapClient saw it),
//   result.json (the answer, binary Document values replaced by the file they were written to),
//   documents/<n>.dcm, or fault.json (faultcode, faultstring, class) when SoapClient raised.

const WSA = 'http://www.w3.org/2005/08/addressing';

class WadowsMtomClient extends SoapClient
{
    public function __doRequest($request, $location, $action, $version, $oneWay = false): ?string
    {
        $response = parent::__doRequest($request, $location, $action, $version, $oneWay);
        $contentType = '';
        foreach (explode("\r\n", (string)$this->__getLastResponseHeaders()) as $line) {
            if (stripos($line, 'content-type:') === 0) {
                $contentType = trim(substr($line, 13));
            }
        }
        if ($response === null || stripos($contentType, 'multipart/related') !== 0) {
            return $response;
        }
        return self::xopInfoset($contentType, $response);
    }

    private static function param(string $contentType, string $name): ?string
    {
        if (preg_match('/;\s*' . preg_quote($name, '/') . '\s*=\s*(?:"([^"]*)"|([^;\s]*))/i', $contentType, $m)) {
            return $m[1] !== '' ? $m[1] : $m[2];
        }
        return null;
    }

    private static function xopInfoset(string $contentType, string $body): string
    {
        $boundary = self::param($contentType, 'boundary');
        $start = trim((string)self::param($contentType, 'start'), '<>');
        $parts = [];
        $root = null;
        foreach (array_slice(explode("--$boundary", $body), 1) as $chunk) {
            if (strncmp($chunk, '--', 2) === 0) {
                break;  // the closing delimiter
            }
            // a part: CRLF, headers, CRLF CRLF, content, and the CRLF that belongs to the next delimiter
            $chunk = substr($chunk, 2, -2);
            [$head, $content] = explode("\r\n\r\n", $chunk, 2);
            $id = '';
            foreach (explode("\r\n", $head) as $line) {
                if (stripos($line, 'content-id:') === 0) {
                    $id = trim(trim(substr($line, 11)), '<>');
                }
            }
            $parts[$id] = $content;
            if ($root === null && ($start === '' || $id === $start)) {
                $root = $id;
            }
        }
        $xml = $parts[$root];
        return preg_replace_callback('/<([\w.-]+:)?Include\b[^>]*\bhref="cid:([^"]+)"[^>]*\/>/',
            function ($m) use ($parts) {
                return base64_encode($parts[rawurldecode($m[2])]);
            }, $xml);
    }
}

function save(string $file, string $data): void
{
    if (!is_dir(dirname($file))) {
        mkdir(dirname($file), 0777, true);
    }
    file_put_contents($file, $data);
}

// Binary values (Document) cannot go into JSON: write them to files and put the file name in their place.
function jsonable($value, string $dir, int &$counter)
{
    if (!is_object($value) && !is_array($value)) {
        return $value;
    }
    $out = [];
    foreach ($value as $key => $item) {
        if ($key === 'Document' && is_string($item)) {
            $file = sprintf('documents/%d.dcm', $counter++);
            save("$dir/$file", $item);
            $out[$key] = ['file' => $file];
        } else {
            $out[$key] = jsonable($item, $dir, $counter);
        }
    }
    return is_object($value) ? (object)$out : $out;
}

$job = json_decode(file_get_contents($argv[1]), true);
$out = $job['out'];
$options = ['soap_version' => SOAP_1_2, 'trace' => true, 'exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE,
            'features' => SOAP_SINGLE_ELEMENT_ARRAYS];

try {
    new SoapClient($job['wsdl'], $options);
    save("$out/wsdl.json", json_encode(['loaded' => true]));
} catch (SoapFault $fault) {
    save("$out/wsdl.json", json_encode(['loaded' => false, 'faultcode' => $fault->faultcode,
                                        'faultstring' => $fault->getMessage()]));
}
$relaxed = "$out/relaxed.wsdl";
save($relaxed, str_replace('wsdl:required="true"', 'wsdl:required="false"', file_get_contents($job['wsdl'])));

foreach ($job['calls'] as $call) {
    $dir = "$out/{$call['name']}";
    $client = ($call['client'] ?? 'plain') === 'mtom' ? new WadowsMtomClient($relaxed, $options)
                                                      : new SoapClient($relaxed, $options);
    $headers = [];
    foreach ($call['headers'] ?? [] as $xml) {
        // XSD_ANYXML: the block goes out as written (the namespace and name given here are not used)
        $headers[] = new SoapHeader(WSA, 'Header', new SoapVar($xml, XSD_ANYXML));
    }
    $client->__setSoapHeaders($headers);
    try {
        $result = $client->__soapCall($call['operation'], [$call['args']]);
        $counter = 0;
        save("$dir/result.json", json_encode(jsonable($result, $dir, $counter), JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
    } catch (SoapFault $fault) {
        save("$dir/fault.json", json_encode(['class' => get_class($fault), 'faultcode' => $fault->faultcode,
                                             'faultcodens' => $fault->faultcodens ?? null,
                                             'faultstring' => $fault->getMessage()], JSON_PRETTY_PRINT));
    }
    save("$dir/request.xml", (string)$client->__getLastRequest());
    save("$dir/request-headers.txt", (string)$client->__getLastRequestHeaders());
    save("$dir/response-headers.txt", (string)$client->__getLastResponseHeaders());
    save("$dir/response.txt", (string)$client->__getLastResponse());
}
