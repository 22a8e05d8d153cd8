"""The three WADO-WS operations as they appear on the wire: body QName, actions, spyne method key."""

from __future__ import annotations

from dataclasses import dataclass

from wadows.soap import namespaces as ns


@dataclass(frozen=True)
class OperationSpec:
    name: str                       # the spyne method (and WSDL operation suffix)
    request: str                    # QName of the Body child that selects it
    input_actions: tuple[str, ...]  # every spelling clients send (PS3.18 text, IHE, later implementations)
    output_action: str              # the answer's action when the caller's spelling is not one we mirror
    mirror_action: bool             # answer with "<input action>Response" so each dialect gets its own back

    def response_action(self, input_action: str | None) -> str:
        if self.mirror_action and input_action in self.input_actions:
            return input_action + "Response"
        return self.output_action


RETRIEVE = OperationSpec(
    name="RetrieveImagingDocumentSet",
    request=f"{{{ns.RAD}}}RetrieveImagingDocumentSetRequest",
    input_actions=("urn:ihe:rad:2009:RetrieveImagingDocumentSet",
                   "urn:ihe:rad:xdsi-b:2009:RetrieveImagingDocumentSet"),
    output_action="urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    mirror_action=False,
)

RENDERED = OperationSpec(
    name="RetrieveRenderedImagingDocumentSet",
    request=f"{{{ns.WADO}}}RetrieveRenderedImagingDocumentSetRequest",
    input_actions=("urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet",
                   "urn:dicom:ws:wado:2011:RetrieveRenderedImagingDocumentSet"),
    output_action="urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse",
    mirror_action=True,
)

INFORMATION = OperationSpec(
    name="RetrieveImagingDocumentSetInformation",
    request=f"{{{ns.WADO}}}RetrieveImagingDocumentSetInformationRequest",
    input_actions=("urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation",
                   "urn:wado:2011:RetrieveImagingDocumentSetInformation",
                   "urn:dicom:ws:wado:2011:RetrieveImagingDocumentSetInformation"),
    output_action="urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse",
    mirror_action=True,
)

BY_REQUEST = {spec.request: spec for spec in (RETRIEVE, RENDERED, INFORMATION)}
