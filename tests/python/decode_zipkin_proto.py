"""Decodes a Zipkin proto3 `ListOfSpans` body (gzip or not) with the protobuf runtime,
from a descriptor built here from the field numbers of openzipkin/zipkin-api's
zipkin.proto, independently of the bridge's encoder. Prints the spans as Zipkin v2 JSON
(the JSON encoding's field names and forms), so a test can compare them with a JSON body.

usage: decode_zipkin_proto.py BODY.bin
"""

import gzip
import ipaddress
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name


def build():
    fd = descriptor_pb2.FileDescriptorProto(name="zipkin.proto", package="zipkin.proto3", syntax="proto3")

    ep = fd.message_type.add(name="Endpoint")
    field(ep, "service_name", 1, F.TYPE_STRING)
    field(ep, "ipv4", 2, F.TYPE_BYTES)
    field(ep, "ipv6", 3, F.TYPE_BYTES)
    field(ep, "port", 4, F.TYPE_INT32)

    an = fd.message_type.add(name="Annotation")
    field(an, "timestamp", 1, F.TYPE_FIXED64)
    field(an, "value", 2, F.TYPE_STRING)

    sp = fd.message_type.add(name="Span")
    kind = sp.enum_type.add(name="Kind")
    for name, number in [("SPAN_KIND_UNSPECIFIED", 0), ("CLIENT", 1), ("SERVER", 2), ("PRODUCER", 3), ("CONSUMER", 4)]:
        kind.value.add(name=name, number=number)
    tags = sp.nested_type.add(name="TagsEntry")
    tags.options.map_entry = True
    field(tags, "key", 1, F.TYPE_STRING)
    field(tags, "value", 2, F.TYPE_STRING)
    field(sp, "trace_id", 1, F.TYPE_BYTES)
    field(sp, "parent_id", 2, F.TYPE_BYTES)
    field(sp, "id", 3, F.TYPE_BYTES)
    field(sp, "kind", 4, F.TYPE_ENUM, type_name=".zipkin.proto3.Span.Kind")
    field(sp, "name", 5, F.TYPE_STRING)
    field(sp, "timestamp", 6, F.TYPE_FIXED64)
    field(sp, "duration", 7, F.TYPE_UINT64)
    field(sp, "local_endpoint", 8, F.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    field(sp, "remote_endpoint", 9, F.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    field(sp, "annotations", 10, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Annotation")
    field(sp, "tags", 11, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Span.TagsEntry")
    field(sp, "debug", 12, F.TYPE_BOOL)
    field(sp, "shared", 13, F.TYPE_BOOL)

    ls = fd.message_type.add(name="ListOfSpans")
    field(ls, "spans", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Span")

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("zipkin.proto3.ListOfSpans"))


def endpoint(e):
    out = {}
    if e.service_name:
        out["serviceName"] = e.service_name
    if e.ipv4:
        out["ipv4"] = str(ipaddress.IPv4Address(e.ipv4))
    if e.ipv6:
        out["ipv6"] = str(ipaddress.IPv6Address(e.ipv6))
    if e.port:
        out["port"] = e.port
    return out


def to_json(s, kind_names):
    out = {"traceId": s.trace_id.hex(), "id": s.id.hex()}
    if s.parent_id:
        out["parentId"] = s.parent_id.hex()
    if s.kind:
        out["kind"] = kind_names[s.kind]
    if s.name:
        out["name"] = s.name
    if s.timestamp:
        out["timestamp"] = s.timestamp
    if s.duration:
        out["duration"] = s.duration
    if s.HasField("local_endpoint"):
        out["localEndpoint"] = endpoint(s.local_endpoint)
    if s.HasField("remote_endpoint"):
        out["remoteEndpoint"] = endpoint(s.remote_endpoint)
    if s.annotations:
        out["annotations"] = [{"timestamp": a.timestamp, "value": a.value} for a in s.annotations]
    if s.tags:
        out["tags"] = dict(s.tags)
    if s.debug:
        out["debug"] = True
    if s.shared:
        out["shared"] = True
    return out


def main():
    with open(sys.argv[1], "rb") as f:
        body = f.read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    cls = build()
    msg = cls.FromString(body)
    kind_names = {v.number: v.name for v in cls.DESCRIPTOR.fields_by_name["spans"].message_type.enum_types_by_name["Kind"].values}
    json.dump([to_json(s, kind_names) for s in msg.spans], sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
