/*
 * A WADO-WS client on JAX-WS: the three operations of a wadows server (or any Imaging Document Source that
 * speaks the same contract), called through the classes `wsimport -extension` generates from wsdl/.
 *
 * It sends what JAX-WS sends by itself once asked for MTOM and WS-Addressing: MTOM-packaged requests,
 * Action/To/MessageID/ReplyTo headers with mustUnderstand, a MessageID "uuid:..." without "urn:".
 * See README.md next to this folder for building and running it.
 */
package wadows.example;

import dicom.wado.ws._2011.ContentTypeListType;
import dicom.wado.ws._2011.DocumentInformationRequestType;
import dicom.wado.ws._2011.DocumentInformationResponseType;
import dicom.wado.ws._2011.InformationSeriesRequestType;
import dicom.wado.ws._2011.InformationStudyRequestType;
import dicom.wado.ws._2011.RenderedDocumentRequestType;
import dicom.wado.ws._2011.RenderedDocumentResponseType;
import dicom.wado.ws._2011.RenderedSeriesRequestType;
import dicom.wado.ws._2011.RenderedStudyRequestType;
import dicom.wado.ws._2011.RetrieveImagingDocumentSetInformationRequestType;
import dicom.wado.ws._2011.RetrieveImagingDocumentSetInformationResponseType;
import dicom.wado.ws._2011.RetrieveRenderedImagingDocumentSetRequestType;
import dicom.wado.ws._2011.RetrieveRenderedImagingDocumentSetResponseType;
import ihe.iti.xds_b._2007.DocumentRequestType;
import ihe.iti.xds_b._2007.DocumentResponseType;
import ihe.iti.xds_b._2007.RetrieveDocumentSetResponseType;
import ihe.rad.xdsi_b._2009.ImagingDocumentSource;
import ihe.rad.xdsi_b._2009.ImagingDocumentSourcePortType;
import ihe.rad.xdsi_b._2009.RetrieveImagingDocumentSetRequestType;
import ihe.rad.xdsi_b._2009.SeriesRequestType;
import ihe.rad.xdsi_b._2009.StudyRequestType;
import ihe.rad.xdsi_b._2009.TransferSyntaxUIDListType;
import oasis.names.tc.ebxml_regrep.xsd.rs._3.RegistryErrorType;
import oasis.names.tc.ebxml_regrep.xsd.rs._3.RegistryResponseType;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.StringReader;
import java.io.Writer;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import javax.activation.DataHandler;
import javax.xml.bind.JAXBElement;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import javax.xml.soap.SOAPException;
import javax.xml.soap.SOAPHeader;
import javax.xml.soap.SOAPHeaderElement;
import javax.xml.soap.SOAPMessage;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.WebServiceException;
import javax.xml.ws.handler.Handler;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;
import javax.xml.ws.soap.AddressingFeature;
import javax.xml.ws.soap.MTOMFeature;
import javax.xml.ws.soap.SOAPFaultException;
import org.w3c.dom.Element;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;

public final class WadoWsExample {

    static final String USAGE = String.join("\n",
        "usage: WadoWsExample [--wsdl URL] [--user NAME] ENDPOINT COMMAND [OPTIONS] STUDY/SERIES/SOP...",
        "       WadoWsExample [--wsdl URL] [--user NAME] ENDPOINT batch FILE",
        "",
        "ENDPOINT  the server's endpoint, e.g. http://127.0.0.1:8080/wado-ws (the WSDL is read from ENDPOINT?wsdl",
        "          unless --wsdl names another copy)",
        "--user    authenticate with HTTP Basic as NAME; the password comes from WADOWS_PASSWORD or a prompt",
        "COMMAND   retrieve  RetrieveImagingDocumentSet (IHE RAD-69): the DICOM objects, <uid>.dcm",
        "          render    RetrieveRenderedImagingDocumentSet: rendered images, <sop>.<ext>",
        "          metadata  RetrieveImagingDocumentSetInformation: XPath answers, <sop>.<n>.xml",
        "          batch     run the commands of FILE, one per line, arguments separated by TAB",
        "",
        "Each document is STUDY/SERIES/SOP (three UIDs). Options:",
        "  --out DIR               write the answer here (default .): the files and answer.tsv",
        "  --anonymize             ask for de-identified objects (wado:Anonymize yes)",
        "  --repository UID        RepositoryUniqueId to send (default: none)",
        "  --transfer-syntax UID   retrieve: an accepted transfer syntax (repeatable;",
        "                          default Explicit VR Little Endian, then Implicit VR Little Endian)",
        "  --frame N               retrieve, render: one frame of a multi-frame object",
        "  --content-type TYPE     render: an accepted media type (repeatable; default image/jpeg)",
        "  --rows N  --columns N  --window-center C  --window-width W  --quality Q  --annotation A",
        "                          render: the PS3.18 rendering parameters",
        "  --xpath XPATH           metadata: an XPath over the PS3.19 model (repeatable; default /)",
        "  --must-understand-all   mark every WS-Addressing header mustUnderstand (as dcm4che's wadows tool does);",
        "                          JAX-WS by itself marks only wsa:Action",
        "  --header XML            add this header block to the SOAP header (repeatable), e.g. a wsse:Security",
        "  --chunk-size N          send the request with chunked transfer coding, N-byte chunks");

    static final String WSA = "http://www.w3.org/2005/08/addressing";
    static final String CHUNK_SIZE = "com.sun.xml.ws.transport.http.client.streaming.chunk.size";
    static final Pattern UID = Pattern.compile("[0-9]+(\\.[0-9]+)*");

    private final ImagingDocumentSource service;
    private final String endpoint;
    private String user;
    private String password;
    private final HeaderHandler headers = new HeaderHandler();
    private ImagingDocumentSourcePortType plainPort;
    private ImagingDocumentSourcePortType handledPort;

    WadoWsExample(String endpoint, String wsdl) throws IOException {
        this.service = new ImagingDocumentSource(new URL(wsdl));
        this.endpoint = endpoint;
    }

    /**
     * The port for one command. Plain JAX-WS unless the command changes the SOAP header: a SOAP handler makes
     * JAX-WS build the message through SAAJ, so only those commands get the port with the handler.
     */
    ImagingDocumentSourcePortType port(Options o) {
        ImagingDocumentSourcePortType p;
        if (!o.mustUnderstandAll && o.headers.isEmpty()) {
            if (plainPort == null) {
                plainPort = newPort();
            }
            p = plainPort;
        } else {
            if (handledPort == null) {
                handledPort = newPort();
                BindingProvider provider = (BindingProvider) handledPort;
                @SuppressWarnings("rawtypes")  // the JAX-WS API itself hands out raw Handler lists
                List<Handler> chain = new ArrayList<>(provider.getBinding().getHandlerChain());
                chain.add(headers);
                provider.getBinding().setHandlerChain(chain);
            }
            headers.mustUnderstandAll = o.mustUnderstandAll;
            headers.extra = o.headers;
            p = handledPort;
        }
        // JAX-WS streams the request with chunked transfer coding when given a chunk size (large requests).
        Map<String, Object> context = ((BindingProvider) p).getRequestContext();
        if (o.chunkSize != null) {
            context.put(CHUNK_SIZE, Integer.valueOf(o.chunkSize));
        } else {
            context.remove(CHUNK_SIZE);
        }
        return p;
    }

    private ImagingDocumentSourcePortType newPort() {
        // MTOM both ways and WS-Addressing with required headers: what Java consumers of RAD-69 send.
        ImagingDocumentSourcePortType p = service.getImagingDocumentSourcePortSoap12(
            new MTOMFeature(true), new AddressingFeature(true, true));
        Map<String, Object> context = ((BindingProvider) p).getRequestContext();
        context.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, endpoint);
        context.put("com.sun.xml.ws.connect.timeout", 10_000);
        context.put("com.sun.xml.ws.request.timeout", 300_000);
        if (user != null) {
            context.put(BindingProvider.USERNAME_PROPERTY, user);
            context.put(BindingProvider.PASSWORD_PROPERTY, password);
        }
        return p;
    }

    /**
     * Changes the outgoing SOAP header the way some consumers do. JAX-WS marks only wsa:Action mustUnderstand;
     * dcm4che's wadows tool marks every addressing header (NIST's IHE_WSA101 rule asks for one). XUA callers add a
     * wsse:Security block, often mustUnderstand. --header adds any block given as XML.
     */
    static final class HeaderHandler implements SOAPHandler<SOAPMessageContext> {
        boolean mustUnderstandAll;
        List<String> extra = List.of();

        @Override
        public boolean handleMessage(SOAPMessageContext context) {
            if (!Boolean.TRUE.equals(context.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) {
                return true;
            }
            try {
                SOAPMessage message = context.getMessage();
                SOAPHeader header = message.getSOAPHeader() != null
                    ? message.getSOAPHeader() : message.getSOAPPart().getEnvelope().addHeader();
                if (mustUnderstandAll) {
                    Iterator<?> children = header.examineAllHeaderElements();
                    while (children.hasNext()) {
                        SOAPHeaderElement element = (SOAPHeaderElement) children.next();
                        if (WSA.equals(element.getNamespaceURI())) {
                            element.setMustUnderstand(true);
                        }
                    }
                }
                for (String xml : extra) {
                    DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
                    factory.setNamespaceAware(true);
                    Element block = factory.newDocumentBuilder()
                        .parse(new InputSource(new StringReader(xml))).getDocumentElement();
                    header.appendChild(header.getOwnerDocument().importNode(block, true));
                }
                message.saveChanges();
            } catch (SOAPException | ParserConfigurationException | SAXException | IOException e) {
                throw new WebServiceException(e);
            }
            return true;
        }

        @Override
        public boolean handleFault(SOAPMessageContext context) {
            return true;
        }

        @Override
        public void close(MessageContext context) {
        }

        @Override
        public Set<QName> getHeaders() {
            return Collections.emptySet();
        }
    }

    public static void main(String[] args) {
        List<String> rest = new ArrayList<>(List.of(args));
        if (rest.contains("--help") || rest.contains("-h")) {
            System.out.println(USAGE);
            System.exit(0);
        }
        String wsdl = null;
        String user = null;
        while (rest.size() >= 2 && (rest.get(0).equals("--wsdl") || rest.get(0).equals("--user"))) {
            String option = rest.remove(0);
            String value = rest.remove(0);
            if (option.equals("--wsdl")) {
                wsdl = value;
            } else {
                user = value;
            }
        }
        if (rest.size() < 2) {
            System.err.println(USAGE);
            System.exit(2);
        }
        String endpoint = rest.remove(0);
        int failures;
        try {
            WadoWsExample client = new WadoWsExample(endpoint, wsdl != null ? wsdl : endpoint + "?wsdl");
            if (user != null) {
                client.user = user;
                client.password = password(user);
            }
            if (rest.get(0).equals("batch")) {
                if (rest.size() != 2) {
                    throw new UsageError("batch takes one FILE");
                }
                failures = client.batch(Paths.get(rest.get(1)));
            } else {
                failures = client.run(rest) ? 0 : 1;
            }
        } catch (UsageError e) {
            System.err.println("WadoWsExample: " + e.getMessage() + "\n\n" + USAGE);
            System.exit(2);
            return;
        } catch (IOException | WebServiceException e) {
            System.err.println("WadoWsExample: " + e);
            System.exit(1);
            return;
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    static String password(String user) {
        String fromEnvironment = System.getenv("WADOWS_PASSWORD");
        if (fromEnvironment != null) {
            return fromEnvironment;
        }
        if (System.console() == null) {
            throw new UsageError("--user needs WADOWS_PASSWORD when there is no terminal to ask on");
        }
        char[] typed = System.console().readPassword("password for %s: ", user);
        if (typed == null) {
            throw new UsageError("no password");
        }
        return new String(typed);
    }

    /** Runs every command of the file; returns how many failed (a fault, an I/O error or a usage error). */
    int batch(Path file) throws IOException {
        int failures = 0;
        int number = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            number++;
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            List<String> command = new ArrayList<>(List.of(line.split("\t")));
            try {
                if (!run(command)) {
                    failures++;
                }
            } catch (UsageError e) {
                System.err.println(file + " line " + number + ": " + e.getMessage());
                failures++;
            }
        }
        return failures;
    }

    /** One command; false when the server answered with a fault or the call failed. */
    boolean run(List<String> args) throws IOException {
        Options options = Options.parse(args);
        Files.createDirectories(options.out);
        try (Answer answer = new Answer(options.out.resolve("answer.tsv"))) {
            try {
                switch (options.command) {
                    case "retrieve": retrieve(options, answer); break;
                    case "render": render(options, answer); break;
                    case "metadata": metadata(options, answer); break;
                    default: throw new UsageError("unknown command " + options.command);
                }
                return true;
            } catch (SOAPFaultException e) {
                answer.line("fault", e.getFault().getFaultCodeAsQName().toString(), e.getFault().getFaultString());
            } catch (WebServiceException e) {
                answer.line("exception", e.toString());
            }
            return false;
        }
    }

    // ---- RetrieveImagingDocumentSet (RAD-69) ----

    void retrieve(Options o, Answer answer) throws IOException {
        RetrieveImagingDocumentSetRequestType request = new RetrieveImagingDocumentSetRequestType();
        for (Map.Entry<String, Map<String, List<String>>> study : o.studies().entrySet()) {
            StudyRequestType studyRequest = new StudyRequestType();
            studyRequest.setStudyInstanceUID(study.getKey());
            for (Map.Entry<String, List<String>> series : study.getValue().entrySet()) {
                SeriesRequestType seriesRequest = new SeriesRequestType();
                seriesRequest.setSeriesInstanceUID(series.getKey());
                for (String sop : series.getValue()) {
                    DocumentRequestType document = new DocumentRequestType();
                    document.setRepositoryUniqueId(o.repository);
                    document.setDocumentUniqueId(sop);
                    document.setAnonymize(o.anonymize ? "yes" : null);
                    document.setFrameNumber(o.frame);
                    seriesRequest.getDocumentRequest().add(document);
                }
                studyRequest.getSeriesRequest().add(seriesRequest);
            }
            request.getStudyRequest().add(studyRequest);
        }
        TransferSyntaxUIDListType syntaxes = new TransferSyntaxUIDListType();
        syntaxes.getTransferSyntaxUID().addAll(o.transferSyntaxes.isEmpty()
            ? List.of("1.2.840.10008.1.2.1", "1.2.840.10008.1.2") : o.transferSyntaxes);
        request.setTransferSyntaxUIDList(syntaxes);

        RetrieveDocumentSetResponseType response = port(o).imagingDocumentSourceRetrieveImagingDocumentSet(request);
        answer.registry(response.getRegistryResponse());
        int index = 0;
        for (DocumentResponseType document : response.getDocumentResponse()) {
            index++;
            String returned = document.getNewDocumentUniqueId() != null
                ? document.getNewDocumentUniqueId() : document.getDocumentUniqueId();
            String name = (returned != null && UID.matcher(returned).matches() ? returned : "document-" + index)
                + (document.getFrameNumber() != null ? "-" + document.getFrameNumber() : "") + ".dcm";
            long size = save(document.getDocument(), o.out.resolve(name));
            answer.line("document", document.getDocumentUniqueId(), document.getNewDocumentUniqueId(),
                        document.getRepositoryUniqueId(), document.getMimeType(), name, Long.toString(size));
        }
    }

    // ---- RetrieveRenderedImagingDocumentSet ----

    void render(Options o, Answer answer) throws IOException {
        dicom.wado.ws._2011.ObjectFactory wado = new dicom.wado.ws._2011.ObjectFactory();
        ihe.iti.xds_b._2007.ObjectFactory xds = new ihe.iti.xds_b._2007.ObjectFactory();
        RetrieveRenderedImagingDocumentSetRequestType request = new RetrieveRenderedImagingDocumentSetRequestType();
        for (Map.Entry<String, Map<String, List<String>>> study : o.studies().entrySet()) {
            RenderedStudyRequestType studyRequest = new RenderedStudyRequestType();
            studyRequest.setStudyInstanceUID(study.getKey());
            for (Map.Entry<String, List<String>> series : study.getValue().entrySet()) {
                RenderedSeriesRequestType seriesRequest = new RenderedSeriesRequestType();
                seriesRequest.setSeriesInstanceUID(series.getKey());
                for (String sop : series.getValue()) {
                    // The schema lets WindowCenter and WindowWidth come in either order, so xjc gives this type
                    // one "content" list instead of properties: the elements go in, in schema order.
                    RenderedDocumentRequestType document = new RenderedDocumentRequestType();
                    List<JAXBElement<?>> content = document.getContent();
                    if (o.repository != null) content.add(xds.createRepositoryUniqueId(o.repository));
                    content.add(xds.createDocumentUniqueId(sop));
                    if (o.annotation != null) content.add(wado.createAnnotation(o.annotation));
                    if (o.rows != null) content.add(wado.createRows(o.rows));
                    if (o.columns != null) content.add(wado.createColumns(o.columns));
                    if (o.windowCenter != null) content.add(wado.createWindowCenter(o.windowCenter));
                    if (o.windowWidth != null) content.add(wado.createWindowWidth(o.windowWidth));
                    if (o.quality != null) content.add(wado.createImageQuality(o.quality));
                    if (o.anonymize) content.add(wado.createAnonymize("yes"));
                    if (o.frame != null) content.add(wado.createFrameNumber(o.frame));
                    ContentTypeListType types = new ContentTypeListType();
                    types.getContentType().addAll(o.contentTypes.isEmpty() ? List.of("image/jpeg") : o.contentTypes);
                    content.add(wado.createRenderedDocumentRequestTypeContentTypeList(types));
                    seriesRequest.getRenderedDocumentRequest().add(document);
                }
                studyRequest.getSeriesRequest().add(seriesRequest);
            }
            request.getStudyRequest().add(studyRequest);
        }

        RetrieveRenderedImagingDocumentSetResponseType response =
            port(o).imagingDocumentSourceRetrieveRenderedImagingDocumentSet(request);
        answer.registry(response.getRegistryResponse());
        int index = 0;
        for (RenderedDocumentResponseType document : response.getRenderedDocumentResponse()) {
            index++;
            String source = document.getSourceDocumentUniqueId();
            String name = (source != null && UID.matcher(source).matches() ? source : "rendered")
                + "." + index + extension(document.getMimeType());
            long size = save(document.getDocument(), o.out.resolve(name));
            answer.line("rendered", source, document.getMimeType(), document.getFrameNumber(), document.getRows(),
                        document.getColumns(), document.getWindowCenter(), document.getWindowWidth(),
                        document.getAnonymize(), name, Long.toString(size));
        }
    }

    static String extension(String mimeType) {
        if (mimeType == null) return ".bin";
        switch (mimeType) {
            case "image/jpeg": return ".jpg";
            case "image/png": return ".png";
            case "image/gif": return ".gif";
            case "text/html": return ".html";
            case "text/plain": return ".txt";
            case "application/pdf": return ".pdf";
            default: return ".bin";
        }
    }

    // ---- RetrieveImagingDocumentSetInformation (metadata) ----

    void metadata(Options o, Answer answer) throws IOException {
        RetrieveImagingDocumentSetInformationRequestType request =
            new RetrieveImagingDocumentSetInformationRequestType();
        for (Map.Entry<String, Map<String, List<String>>> study : o.studies().entrySet()) {
            InformationStudyRequestType studyRequest = new InformationStudyRequestType();
            studyRequest.setStudyInstanceUID(study.getKey());
            for (Map.Entry<String, List<String>> series : study.getValue().entrySet()) {
                InformationSeriesRequestType seriesRequest = new InformationSeriesRequestType();
                seriesRequest.setSeriesInstanceUID(series.getKey());
                for (String sop : series.getValue()) {
                    DocumentInformationRequestType document = new DocumentInformationRequestType();
                    document.setRepositoryUniqueId(o.repository);
                    document.setDocumentUniqueId(sop);
                    document.setAnonymize(o.anonymize ? "yes" : null);
                    document.getXPath().addAll(o.xpaths.isEmpty() ? List.of("/") : o.xpaths);
                    seriesRequest.getDocumentInformationRequest().add(document);
                }
                studyRequest.getSeriesRequest().add(seriesRequest);
            }
            request.getStudyRequest().add(studyRequest);
        }

        RetrieveImagingDocumentSetInformationResponseType response =
            port(o).imagingDocumentSourceRetrieveImagingDocumentSetInformation(request);
        answer.registry(response.getRegistryResponse());
        int index = 0;
        for (DocumentInformationResponseType document : response.getDocumentInformationResponse()) {
            index++;
            String uid = document.getDocumentUniqueId();
            String stem = uid != null && UID.matcher(uid).matches() ? uid : "document-" + index;
            List<String> answers = document.getXPathResponseList().getXPathResponse();
            for (int n = 0; n < answers.size(); n++) {
                String name = stem + "." + (n + 1) + ".xml";
                Files.write(o.out.resolve(name), answers.get(n).getBytes(StandardCharsets.UTF_8));
                answer.line("information", uid, document.getRepositoryUniqueId(), Integer.toString(n + 1), name);
            }
        }
    }

    // ---- helpers ----

    /** Writes an attachment as received (JAX-WS hands MTOM parts over as DataHandlers). */
    static long save(DataHandler handler, Path path) throws IOException {
        try (InputStream in = handler.getInputStream()) {
            return Files.copy(in, path, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static final class UsageError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageError(String message) {
            super(message);
        }
    }

    /** The parsed arguments of one command. */
    static final class Options {
        String command;
        Path out = Paths.get(".");
        boolean anonymize, mustUnderstandAll;
        final List<String> headers = new ArrayList<>();
        String repository, frame, rows, columns, windowCenter, windowWidth, quality, annotation, chunkSize;
        final List<String> transferSyntaxes = new ArrayList<>();
        final List<String> contentTypes = new ArrayList<>();
        final List<String> xpaths = new ArrayList<>();
        final List<String[]> documents = new ArrayList<>();

        static Options parse(List<String> args) {
            Options o = new Options();
            if (args.isEmpty()) throw new UsageError("no command");
            o.command = args.get(0);
            for (int i = 1; i < args.size(); i++) {
                String arg = args.get(i);
                if (arg.equals("--anonymize")) {
                    o.anonymize = true;
                    continue;
                }
                if (arg.equals("--must-understand-all")) {
                    o.mustUnderstandAll = true;
                    continue;
                }
                if (arg.startsWith("--")) {
                    if (i + 1 >= args.size()) throw new UsageError(arg + " needs a value");
                    String value = args.get(++i);
                    switch (arg) {
                        case "--out": o.out = Paths.get(value); break;
                        case "--repository": o.repository = value; break;
                        case "--transfer-syntax": o.transferSyntaxes.add(value); break;
                        case "--frame": o.frame = value; break;
                        case "--content-type": o.contentTypes.add(value); break;
                        case "--rows": o.rows = value; break;
                        case "--columns": o.columns = value; break;
                        case "--window-center": o.windowCenter = value; break;
                        case "--window-width": o.windowWidth = value; break;
                        case "--quality": o.quality = value; break;
                        case "--annotation": o.annotation = value; break;
                        case "--xpath": o.xpaths.add(value); break;
                        case "--header": o.headers.add(value); break;
                        case "--chunk-size": o.chunkSize = value; break;
                        default: throw new UsageError("unknown option " + arg);
                    }
                    continue;
                }
                String[] uids = arg.split("/");
                if (uids.length != 3) throw new UsageError("a document is STUDY/SERIES/SOP, not " + arg);
                o.documents.add(uids);
            }
            if (o.documents.isEmpty()) throw new UsageError(o.command + ": no document");
            return o;
        }

        /** study -> series -> SOP instances, in the order given (one StudyRequest per study, ...). */
        Map<String, Map<String, List<String>>> studies() {
            Map<String, Map<String, List<String>>> studies = new LinkedHashMap<>();
            for (String[] d : documents) {
                studies.computeIfAbsent(d[0], k -> new LinkedHashMap<>())
                       .computeIfAbsent(d[1], k -> new ArrayList<>()).add(d[2]);
            }
            return studies;
        }
    }

    /** answer.tsv, one line per fact, TAB-separated, "-" for absent values; echoed to standard output. */
    static final class Answer implements AutoCloseable {
        private final Writer writer;
        private final PrintStream echo = System.out;

        Answer(Path path) throws IOException {
            writer = Files.newBufferedWriter(path, StandardCharsets.UTF_8);
        }

        void registry(RegistryResponseType registry) throws IOException {
            line("status", registry.getStatus());
            if (registry.getRegistryErrorList() != null) {
                for (RegistryErrorType error : registry.getRegistryErrorList().getRegistryError()) {
                    line("error", error.getErrorCode(), error.getLocation(), error.getSeverity(),
                         error.getCodeContext());
                }
            }
        }

        void line(String... fields) throws IOException {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < fields.length; i++) {
                if (i > 0) line.append('\t');
                line.append(fields[i] == null ? "-" : fields[i].replaceAll("[\\t\\r\\n]+", " "));
            }
            writer.write(line.append('\n').toString());
            echo.print(line);
        }

        @Override
        public void close() throws IOException {
            writer.close();
        }
    }
}
