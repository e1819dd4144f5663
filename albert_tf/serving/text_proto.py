"""Reading albert-serve's config files (TF Serving's text-format protos), with errors that
name the flag, the file and, for parse errors, the line and column.

No TensorFlow import: albert-serve checks its flags before TensorFlow loads.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_FIELD_TYPES = {
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
}


def proto3_message_classes(file_name, package, messages):
    """Builds proto3 message classes from a schema table; returns {message name: class}.

    For the TF Serving messages the tensorflow-serving-api and tensorflow wheels do not
    ship (monitoring_config.proto, ssl_config.proto, profiler_service.proto). `messages`
    maps a message name to its fields, each (field name, number, type); a type is "bool",
    "string", "int32", "uint32", "int64", "uint64" or the name of another message in the table,
    and "repeated <type>" for a repeated field. Fields left out of a table are kept as
    unknown fields when a message is parsed. The classes live in a private descriptor
    pool, so they never clash with a registered proto of the same name.
    """
    field = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for message_name, fields in messages.items():
        message = schema.message_type.add(name=message_name)
        for field_name, number, kind in fields:
            repeated = kind.startswith("repeated ")
            kind = kind.removeprefix("repeated ")
            label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if kind in _FIELD_TYPES:
                message.field.add(name=field_name, number=number, type=_FIELD_TYPES[kind], label=label)
            elif kind in messages:
                message.field.add(name=field_name, number=number, type=field.TYPE_MESSAGE, label=label,
                                  type_name=f".{package}.{kind}")
            else:
                raise ValueError(f"{message_name}.{field_name}: unknown field type {kind!r}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}


def proto3_message_class(file_name, package, messages, name):
    """The class of message `name` from `proto3_message_classes(file_name, package, messages)`."""
    return proto3_message_classes(file_name, package, messages)[name]


def read_config_text(path, flag, error_class):
    """The text (str) of the file `path` given to `flag`; `error_class(message)` if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise error_class(f"{flag} {path}: {e.strerror}") from None


def read_text_proto(path, message, flag, error_class):
    """Parses the text-format proto file `path` into `message` (a fresh proto) and returns it.
    Errors raise `error_class` as "<flag> <path>:<line>:<column> : <what>"."""
    text = read_config_text(path, flag, error_class)
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise error_class(f"{flag} {path}:{e}") from None
