"""Our own RELAX NG schema of the PS3.19 Native DICOM Model (written from the A.1.6 description).

PS3.19 publishes its schema in RELAX NG compact syntax; lxml reads only the XML syntax, so this is the same
structure in XML syntax, with the value spaces we promise: 8 upper-case hex digit tags, the VRs of PS3.5,
positive `number`s, base64 InlineBinary. What RELAX NG cannot say (numbers run 1, 2, 3 ... in order;
PersonName only under PN) is for the tests.
"""

from __future__ import annotations

from functools import lru_cache

from lxml import etree

from wadows.dicom.native_model import NATIVE_DICOM_NAMESPACE

__all__ = ["NATIVE_DICOM_MODEL_RNG", "native_model_schema"]

VRS = ("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV")

NATIVE_DICOM_MODEL_RNG = f"""\
<grammar xmlns="http://relaxng.org/ns/structure/1.0" ns="{NATIVE_DICOM_NAMESPACE}"
         datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <start>
    <element name="NativeDicomModel">
      <zeroOrMore><ref name="DicomAttribute"/></zeroOrMore>
    </element>
  </start>

  <define name="DicomAttribute">
    <element name="DicomAttribute">
      <attribute name="tag"><data type="string"><param name="pattern">[0-9A-F]{{8}}</param></data></attribute>
      <attribute name="vr"><choice>{"".join(f"<value>{vr}</value>" for vr in VRS.split())}</choice></attribute>
      <optional><attribute name="keyword"><data type="NCName"/></attribute></optional>
      <optional><attribute name="privateCreator"><data type="string"/></attribute></optional>
      <optional>
        <choice>
          <element name="BulkData">
            <choice>
              <attribute name="uuid"><data type="string"/></attribute>
              <attribute name="uri"><data type="anyURI"/></attribute>
            </choice>
          </element>
          <oneOrMore>
            <element name="Value"><ref name="number"/><data type="string"/></element>
          </oneOrMore>
          <oneOrMore>
            <element name="Item"><ref name="number"/><zeroOrMore><ref name="DicomAttribute"/></zeroOrMore></element>
          </oneOrMore>
          <oneOrMore>
            <element name="PersonName">
              <ref name="number"/>
              <optional><element name="Alphabetic"><ref name="NameComponents"/></element></optional>
              <optional><element name="Ideographic"><ref name="NameComponents"/></element></optional>
              <optional><element name="Phonetic"><ref name="NameComponents"/></element></optional>
            </element>
          </oneOrMore>
          <element name="InlineBinary"><data type="base64Binary"/></element>
        </choice>
      </optional>
    </element>
  </define>

  <define name="number">
    <attribute name="number"><data type="positiveInteger"/></attribute>
  </define>

  <define name="NameComponents">
    <optional><element name="FamilyName"><text/></element></optional>
    <optional><element name="GivenName"><text/></element></optional>
    <optional><element name="MiddleName"><text/></element></optional>
    <optional><element name="NamePrefix"><text/></element></optional>
    <optional><element name="NameSuffix"><text/></element></optional>
  </define>
</grammar>
"""


@lru_cache(maxsize=1)
def native_model_schema() -> etree.RelaxNG:
    """The compiled schema; `native_model_schema().assertValid(model)` raises on a non-conforming model."""
    return etree.RelaxNG(etree.fromstring(NATIVE_DICOM_MODEL_RNG))
