"""Reading albert-serve's config files (TF Serving's text-format protos), with errors that
name the flag, the file and, for parse errors, the line and column.

No TensorFlow import: albert-serve checks its flags before TensorFlow loads.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_FIELD_TYPES = {
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
}


def proto3_message_class(file_name, package, messages, name):
    """Builds proto3 message classes from a schema table and returns the one called `name`.

    For the TF Serving config messages the tensorflow-serving-api wheel does not ship
    (monitoring_config.proto, ssl_config.proto). `messages` maps a message name to its
    fields, each (field name, number, type); a type is "bool", "string" or the name of
    another message in the table. The classes live in a private descriptor pool, so they
    never clash with a registered proto of the same name.
    """
    field = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for message_name, fields in messages.items():
        message = schema.message_type.add(name=message_name)
        for field_name, number, kind in fields:
            if kind in _FIELD_TYPES:
                message.field.add(name=field_name, number=number, type=_FIELD_TYPES[kind], label=field.LABEL_OPTIONAL)
            elif kind in messages:
                message.field.add(name=field_name, number=number, type=field.TYPE_MESSAGE,
                                  label=field.LABEL_OPTIONAL, type_name=f".{package}.{kind}")
            else:
                raise ValueError(f"{message_name}.{field_name}: unknown field type {kind!r}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))


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
