"""SOAP 1.1 document/literal calls over a WSDL zeep loaded, without zeep's per-call work.

zeep reads and checks the WSDL once (with its protections against DTDs, entities and external
references on). From what it parsed, `SoapOperation` keeps two things for one operation:

- the request envelope as a template: zeep renders it once with marker values, and a call fills
  the XML-escaped values in (a few bytes joined, no lxml tree, no xsd objects);
- a reader of the answer compiled from the output message's schema. The answer is parsed by a
  hardened lxml parser (no DTD loading, no entity expansion, no network, no huge trees, and a
  DOCTYPE is refused), then walked the way zeep's xsd parser walks it in strict mode, straight
  into the plain dicts that `zeep.helpers.serialize_object` would make of zeep's objects: every
  element of a complex type present (None, or its default, when absent), lists where an element
  may repeat, and simple values through zeep's own conversions (`xsd:int` gives an int).

HTTP statuses, SOAP faults and unreadable answers are handled as zeep's
`Soap11Binding.process_reply` handles them and raise the same zeep exceptions, so that an
adapter classifies them exactly as before. The messages of those exceptions never quote the
answer. A schema the reader does not cover (attributes, xsd:any, nested or repeated groups,
simple content) is refused when the WSDL is loaded (`SchemaNotSupported`), never half-read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import zeep
import zeep.exceptions
from lxml import etree
from zeep.utils import qname_attr
from zeep.wsdl.bindings.soap import Soap11Binding
from zeep.wsdl.messages.soap import DocumentMessage
from zeep.wsdl.utils import etree_to_string
from zeep.xsd import ComplexType, Element
from zeep.xsd.elements.indicators import Choice, Sequence
from zeep.xsd.types.builtins import String
from zeep.xsd.types.simple import AnySimpleType

from adapters.base import RawAnswer

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE = f"{{{SOAP11_ENV}}}Envelope"
BODY = f"{{{SOAP11_ENV}}}Body"
BODY_FAULT = f"{BODY}/{{{SOAP11_ENV}}}Fault"
XSI_NAMESPACE = b"http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
UNKNOWN_FAULT = "Unknown fault occured"  # zeep's words for an error status without a Fault

# Characters XML 1.0 cannot carry (lxml refuses them when zeep renders a request).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PLAIN_TEXT = re.compile(r"[\w .,:;/@#+=()\[\]-]*", re.ASCII)
_TEXT_ESCAPES = {"\r": "&#13;"}  # as lxml writes it; a raw CR would be read back as LF


class SchemaNotSupported(ValueError):
    """The WSDL uses something the lean request template or answer reader does not cover."""


class RequestValueError(ValueError):
    """A request value cannot be sent in XML; names the field, never quotes the value."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} holds characters that XML 1.0 cannot carry")
        self.field = field


# --- parsing ------------------------------------------------------------------------------------

_parsers = threading.local()  # lxml parsers must not be shared between threads


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,  # as zeep's parser: a comment does not cut a text in two
            remove_pis=True,
        )
        _parsers.parser = parser
    return parser


def parse_document(content: bytes) -> etree._Element:
    """The root of an XML answer; zeep's XMLSyntaxError or DTDForbidden when it is not one."""
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        # lxml's message may quote the answer: only where it went wrong.
        raise zeep.exceptions.XMLSyntaxError(  # type: ignore[no-untyped-call]
            f"not well-formed XML at line {exc.lineno}, column {exc.offset}", content=content
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        name, system_url, public_id = docinfo.root_name, docinfo.system_url, docinfo.public_id
        raise zeep.exceptions.DTDForbidden(name, system_url, public_id)  # type: ignore[no-untyped-call]
    return root


_DOCTYPE = b"<!DOCTYPE"
_PROLOG_SCAN = 64 * 1024  # a DOCTYPE and its DTD come before the root element: look no further
# An entity declaration after "<!ENTITY": its name (a parameter entity's after "%"), then the rest.
_ENTITY_DECLARATION = re.compile(rb"\s+(?:%\s+)?[^\s%>]+\s+(.*)", re.DOTALL)


def has_doctype(content: bytes | None) -> bool:
    """Whether an answer declares a DOCTYPE before its root element (looked for once a parse
    failed, and in a WSDL: never on a call's usual path)."""
    return content is not None and content.find(_DOCTYPE, 0, _PROLOG_SCAN) >= 0


def doctype_refusal(content: bytes | None) -> str:
    """Why an answer with a DOCTYPE is refused, naming the attack its DTD makes: external
    entities or an external DTD (XXE), entities that expand others (an entity expansion bomb
    such as billion laughs). Declarations are counted, never quoted: their text is the
    source's."""
    start = -1 if content is None else content.find(_DOCTYPE, 0, _PROLOG_SCAN)
    if content is None or start < 0:
        return "XML with a DTD refused"
    prolog = content[start : start + _PROLOG_SCAN]
    bracket = prolog.find(b"[")
    head = prolog[: bracket if bracket >= 0 else prolog.find(b">")]
    external_dtd = b"SYSTEM" in head or b"PUBLIC" in head
    declarations = [part.split(b">", 1)[0] for part in prolog.split(b"<!ENTITY")[1:]]
    external = nested = 0
    for declaration in declarations:
        parsed = _ENTITY_DECLARATION.match(declaration)
        rest = parsed.group(1) if parsed else declaration
        if rest.startswith((b"SYSTEM", b"PUBLIC")):
            external += 1
        elif b"&" in rest or b"%" in rest:
            nested += 1
    if external or external_dtd:
        what = [f"{external} external entit{'y' if external == 1 else 'ies'}"] if external else []
        what += ["an external DTD"] if external_dtd else []
        return (
            f"XML with a DTD refused: it declares {' and '.join(what)} (XXE); "
            "entity references refused, none resolved"
        )
    if nested:
        return (
            f"XML with a DTD refused: {len(declarations)} entity declarations, {nested} of them "
            "expanding others (an entity expansion bomb); entity references refused"
        )
    if declarations:
        return (
            f"XML with a DTD refused: {len(declarations)} entity declaration"
            f"{'' if len(declarations) == 1 else 's'}; entity references refused"
        )
    return "XML with a DTD refused"


# --- the request --------------------------------------------------------------------------------


def xml_text(value: str, field: str) -> bytes:
    """`value` as XML character data, escaped as lxml escapes it, in UTF-8."""
    if _PLAIN_TEXT.fullmatch(value):  # ids and codes: nothing to check or escape
        return value.encode("ascii")
    if _NOT_XML_CHAR.search(value):
        raise RequestValueError(field)
    return escape(value, _TEXT_ESCAPES).encode("utf-8")


@dataclass(frozen=True)
class RequestTemplate:
    """An operation's request envelope as zeep renders it, with holes for its string fields."""

    fields: tuple[str, ...]  # in the order they appear in the envelope
    parts: tuple[bytes, ...]  # one more than fields: the bytes around them
    headers: Mapping[str, str]  # SOAPAction and Content-Type, as zeep sends them

    @classmethod
    def from_zeep(cls, client: zeep.Client, binding: Any, operation: str) -> RequestTemplate:
        body = binding.get(operation).input.body
        names = []
        for name, element in body.type.elements:
            if not isinstance(element, Element) or not isinstance(element.type, String):
                raise SchemaNotSupported(f"{operation} input {name}: only strings are filled in")
            if element.accepts_multiple:
                raise SchemaNotSupported(f"{operation} input {name}: repeats")
            names.append(name)
        markers = {name: f"\ue000{index}\ue001" for index, name in enumerate(names)}
        envelope, headers = binding._create(
            operation, (), dict(markers), client=client, options={"address": ""}
        )
        rendered: bytes = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        found = sorted((rendered.find(markers[name].encode()), name) for name in names)
        if any(rendered.count(markers[name].encode()) != 1 for name in names):
            raise SchemaNotSupported(f"{operation}: each input must appear once in the envelope")
        parts, start = [], 0
        for position, name in found:
            parts.append(rendered[start:position])
            start = position + len(markers[name].encode())
        parts.append(rendered[start:])
        return cls(tuple(name for _, name in found), tuple(parts), dict(headers))

    def render(self, values: Mapping[str, str]) -> bytes:
        """The envelope with `values` (one per field) filled in."""
        out = [self.parts[0]]
        for field, part in zip(self.fields, self.parts[1:], strict=True):
            out.append(xml_text(values[field], field))
            out.append(part)
        return b"".join(out)


# --- the answer ---------------------------------------------------------------------------------


def parse_error(message: str, sourceline: int | None) -> zeep.exceptions.XMLParseError:
    """zeep's error for an answer whose elements are not what the schema says."""
    return zeep.exceptions.XMLParseError(message, sourceline=sourceline)  # type: ignore[no-untyped-call]


class _Unexpected(Exception):
    """A required element is not where the schema puts it (zeep's UnexpectedElementError)."""

    def __init__(self, message: str, sourceline: int | None) -> None:
        super().__init__(message)
        self.sourceline = sourceline


def _split(tag: str) -> tuple[str, str]:
    """The namespace ('' when none) and local name of an lxml tag."""
    if tag[:1] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


class _TypePlan:
    """A complex type: its elements in order, their defaults, and whether it is a choice."""

    __slots__ = ("choice", "elements", "empty", "rows", "sequence", "template")

    def __init__(self) -> None:
        self.elements: tuple[_ElementPlan, ...] = ()
        self.template: dict[str, Any] = {}
        self.choice = False
        self.empty = False
        self.sequence = False  # a sequence with elements: `_in_order` may read it
        # For `_in_order`, per element: tag, name, complex plan, conversion, optional, single.
        self.rows: tuple[tuple[str, str, _TypePlan | None, Any, bool, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class _ElementPlan:
    name: str  # the key in the result
    tag: str  # {namespace}local
    local: str
    namespace: str | None
    max_occurs: int | None  # None: unbounded
    multiple: bool
    single: bool  # max_occurs 1
    optional: bool
    default: Any  # when absent: None, [] when it may repeat, or the schema's default
    xsd_type: Any
    plan: _TypePlan | None  # complex content
    convert: Any  # simple content: zeep's pythonvalue, None for strings


class AnswerReader:
    """Reads answers of one element type into zeep's plain-dict shape (see the module doc)."""

    def __init__(self, element: Any, schema: Any) -> None:
        self.schema = schema
        self._plans: dict[int, tuple[Any, _TypePlan]] = {}
        self._compiling = threading.Lock()  # for types met at read time (xsi:type)
        self.root = self._element(str(element.attr_name or element.name), element)
        if self.root.plan is None:
            raise SchemaNotSupported(f"{element.qname}: the answer must be a complex type")

    # -- compiling -------------------------------------------------------------------------------
    def _element(self, name: str, element: Any) -> _ElementPlan:
        qname = element.qname
        xsd_type = element.type
        plan, convert = self._content(xsd_type, str(qname))
        max_occurs = None if element.max_occurs == "unbounded" else int(element.max_occurs)
        return _ElementPlan(
            name=name,
            tag=qname.text,
            local=qname.localname,
            namespace=qname.namespace or None,
            max_occurs=max_occurs,
            multiple=bool(element.accepts_multiple),
            single=max_occurs == 1,
            optional=bool(element.is_optional),
            default=element.default_value,
            xsd_type=xsd_type,
            plan=plan,
            convert=convert,
        )

    def _content(self, xsd_type: Any, where: str) -> tuple[_TypePlan | None, Any]:
        if isinstance(xsd_type, ComplexType):
            return self._plan(xsd_type, where), None
        if isinstance(xsd_type, AnySimpleType):
            pythonvalue = type(xsd_type).pythonvalue
            return None, None if pythonvalue is String.pythonvalue else xsd_type.pythonvalue
        raise SchemaNotSupported(f"{where}: type {type(xsd_type).__name__} is not read")

    def _plan(self, xsd_type: ComplexType, where: str) -> _TypePlan:
        known = self._plans.get(id(xsd_type))
        if known is not None:
            return known[1]
        plan = _TypePlan()
        self._plans[id(xsd_type)] = (xsd_type, plan)  # before the elements: types may recurse
        try:
            self._fill(plan, xsd_type, where)
        except SchemaNotSupported:
            del self._plans[id(xsd_type)]
            raise
        return plan

    def _fill(self, plan: _TypePlan, xsd_type: ComplexType, where: str) -> None:
        if xsd_type.attributes:
            raise SchemaNotSupported(f"{where}: attributes are not read")
        if not xsd_type.elements:
            plan.empty = True
            return
        group = xsd_type._element
        if isinstance(group, Sequence) and not group.accepts_multiple:
            members = group.elements
        elif isinstance(group, Choice) and not group.accepts_multiple:
            members = group.elements_nested
            plan.choice = True
        else:
            raise SchemaNotSupported(f"{where}: only a sequence or a choice of elements is read")
        elements = []
        for name, member in members:
            if not isinstance(member, Element):
                raise SchemaNotSupported(f"{where}.{name}: only elements are read")
            elements.append(self._element(name, member))
        plan.elements = tuple(elements)
        plan.template = {element.name: element.default for element in elements}
        plan.sequence = not plan.choice
        plan.rows = tuple(
            (e.tag, e.name, e.plan, e.convert, e.optional, e.single) for e in elements
        )

    # -- reading ---------------------------------------------------------------------------------
    def read(self, node: etree._Element, may_have_xsi_type: bool = True) -> Any:
        """The answer element `node` as zeep would give it, serialized to plain dicts.

        `may_have_xsi_type=False` (the document never names the XML Schema instance namespace)
        skips looking for xsi:type on every element.
        """
        root = self.root
        if node.tag != root.tag:
            namespace, local = _split(node.tag)
            if local != root.local or (
                namespace and root.namespace and namespace != root.namespace
            ):
                raise parse_error(
                    f"Unexpected element {node.tag!r}, expected {root.tag!r}", node.sourceline
                )
        values = self._value(root, node, False, may_have_xsi_type)
        # zeep unwraps an answer of one element (and that one's only child, if it has one).
        if not isinstance(values, dict) or len(values) > 1:
            return values
        if not values:
            return None
        only = next(iter(values.values()))
        if isinstance(only, dict) and len(only) == 1:
            return next(iter(only.values()))
        return only

    def _value(
        self, element: _ElementPlan, node: etree._Element, allow_none: bool, typed: bool
    ) -> Any:
        plan, convert = element.plan, element.convert
        if typed and node.get(XSI_TYPE) is not None:  # read as that type, as zeep does
            instance_type = qname_attr(node, XSI_TYPE)
            xsd_type = self.schema.get_type(instance_type, fail_silently=True)
            if xsd_type is not None and xsd_type is not element.xsd_type:
                try:
                    with self._compiling:  # no other thread sees a plan half made
                        plan, convert = self._content(xsd_type, str(instance_type))
                except SchemaNotSupported as exc:
                    raise parse_error(f"xsi:type not read: {exc}", node.sourceline) from None
        if plan is not None:
            return self._complex(plan, node, allow_none, typed)
        return _simple(convert, node.text)

    def _complex(self, plan: _TypePlan, node: etree._Element, allow_none: bool, typed: bool) -> Any:
        if plan.empty:
            return None
        if not typed and plan.sequence:
            values = self._in_order(plan, node)
            if values is not None:
                return values
        children = list(node)
        if not children:
            if allow_none and not node.keys():
                return None
            return dict(plan.template)
        try:
            if plan.choice:
                values, used = self._choice(plan, children, typed)
            else:
                values = dict(plan.template)
                used = self._sequence(plan, children, values, typed)
        except _Unexpected as exc:
            raise parse_error(str(exc), exc.sourceline) from None
        if used < len(children):
            extra = children[used]
            raise parse_error(f"Unexpected element {extra.tag!r}", extra.sourceline)
        return values

    def _in_order(self, plan: _TypePlan, node: etree._Element) -> dict[str, Any] | None:
        """The usual case of a sequence, in one pass: each child is the next element of the
        schema, or a later one after optional ones, each at most once, in the schema's own
        namespace. Gives what `_sequence` gives; None when anything else is there (and when
        there are no children), for the general path to read (or refuse)."""
        values = plan.template.copy()
        rows = plan.rows
        count, index = len(rows), 0
        for child in node:
            tag = child.tag
            while True:
                if index == count:
                    return None
                expected, name, sub, convert, optional, single = rows[index]
                if expected == tag:
                    break
                if not optional:
                    return None
                index += 1
            if not single:
                return None
            if sub is None:
                values[name] = child.text if convert is None else _simple(convert, child.text)
            elif sub.sequence:
                inner = self._in_order(sub, child)
                values[name] = self._complex(sub, child, True, False) if inner is None else inner
            else:
                values[name] = self._complex(sub, child, True, False)
            index += 1
        return values if index else None

    def _sequence(
        self, plan: _TypePlan, children: list[etree._Element], values: dict[str, Any], typed: bool
    ) -> int:
        """zeep's Sequence: each element in turn, until the children run out."""
        position, count = 0, len(children)
        for element in plan.elements:
            position = self._matches(element, children, position, values, typed)
            if position >= count:
                break
        return position

    def _choice(
        self, plan: _TypePlan, children: list[etree._Element], typed: bool
    ) -> tuple[dict[str, Any], int]:
        """zeep's Choice: the option that reads the most children (the first, on a tie)."""
        best: tuple[int, dict[str, Any]] | None = None
        for element in plan.elements:
            trial: dict[str, Any] = {}
            try:
                used = self._matches(element, children, 0, trial, typed)
            except _Unexpected:
                continue
            if used and (best is None or used > best[0]):
                best = (used, trial)
        if best is None:
            return {}, 0
        used, values = best
        for element in plan.elements:
            values.setdefault(element.name, element.default)
        return values, used

    def _matches(
        self,
        element: _ElementPlan,
        children: list[etree._Element],
        position: int,
        values: dict[str, Any],
        typed: bool,
    ) -> int:
        """zeep's Element: read the run of `element` from `position`; the position after it."""
        found: list[Any] = []
        count = len(children)
        limit = element.max_occurs
        while position < count and (limit is None or len(found) < limit):
            child = children[position]
            tag = child.tag
            if tag != element.tag:
                namespace, local = _split(tag)
                if namespace and element.namespace and namespace != element.namespace:
                    break  # zeep (strict): another namespace ends the run, no error here
                if local != element.local:
                    if not found and not element.optional:
                        raise _Unexpected(
                            f"Unexpected element {tag!r}, expected {element.tag!r}",
                            child.sourceline,
                        )
                    break
            found.append(self._value(element, child, True, typed))
            position += 1
        if element.multiple:
            values[element.name] = found
        else:
            values[element.name] = found[0] if found else None
        return position


def _simple(convert: Any, text: str | None) -> Any:
    """A simple value as zeep reads it: None when empty or when it does not convert."""
    if text is None or convert is None:
        return text
    try:
        return convert(text)
    except (TypeError, ValueError):
        return None


# --- one operation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoapOperation:
    """One document/literal operation of a SOAP 1.1 binding: its request and its answer."""

    name: str
    request: RequestTemplate
    reader: AnswerReader

    @classmethod
    def from_client(cls, client: zeep.Client, operation: str) -> SoapOperation:
        """The operation as zeep loaded it; SchemaNotSupported when the WSDL lacks it or it is
        something else than SOAP 1.1 document/literal with one body part each way."""
        binding = next(
            (b for b in client.wsdl.bindings.values() if operation in b._operations), None
        )
        if binding is None:
            raise SchemaNotSupported(f"the WSDL has no binding with operation {operation}")
        if not isinstance(binding, Soap11Binding):
            raise SchemaNotSupported(f"{operation}: the binding is not SOAP 1.1")
        output: Any = binding.get(operation).output  # type: ignore[no-untyped-call]
        is_document = isinstance(output, DocumentMessage)  # (not narrowing `output`: untyped)
        if (
            not is_document
            or output.body is None
            or output._is_body_wrapped
            or (output.header is not None and output.header.type._element)
        ):
            raise SchemaNotSupported(
                f"{operation}: the answer is not one document/literal body part without headers"
            )
        return cls(
            operation,
            RequestTemplate.from_zeep(client, binding, operation),
            AnswerReader(output.body, client.wsdl.types),
        )

    def render(self, values: Mapping[str, str]) -> bytes:
        return self.request.render(values)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    def read(self, answer: RawAnswer) -> Any:
        """The answer's result in zeep's plain-dict shape, or the zeep exception zeep raises:
        TransportError (no content, or not XML), DTDForbidden, Fault, XMLParseError."""
        status, content = answer.status_code, answer.content
        if status in (201, 202) and not content:
            return None
        if status != 200 and not content:
            raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"HTTP status {status} without content", status_code=status
            )
        try:
            root = parse_document(content)
        except zeep.exceptions.XMLSyntaxError as exc:
            raise zeep.exceptions.TransportError(  # type: ignore[no-untyped-call]
                exc.message, status_code=status, content=content
            ) from None
        fault = root.find(BODY_FAULT)
        if status != 200 or fault is not None:
            raise soap_fault(fault)
        if root.tag != ENVELOPE:  # zeep's error for it
            raise zeep.exceptions.XMLSyntaxError(  # type: ignore[no-untyped-call]
                f"the root element is not a SOAP 1.1 Envelope but {root.tag!r}"
            )
        body = root.find(BODY)
        if body is None or len(body) == 0:  # zeep fails with a TypeError or an IndexError
            raise parse_error("the SOAP Envelope has no Body or an empty one", root.sourceline)
        return self.reader.read(body[0], XSI_NAMESPACE in content)


def soap_fault(node: etree._Element | None) -> zeep.exceptions.Fault:
    """The SOAP 1.1 Fault element as zeep's Fault (zeep's unknown fault when there is none)."""
    if node is None:
        return zeep.exceptions.Fault(UNKNOWN_FAULT, code=None)  # type: ignore[no-untyped-call]

    def text(name: str) -> str | None:
        child = node.find(name)
        return None if child is None else child.text

    return zeep.exceptions.Fault(  # type: ignore[no-untyped-call]
        text("faultstring"), code=text("faultcode"), actor=text("faultactor")
    )
