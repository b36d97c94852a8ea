"""AWS SDK spans for botocore (and boto3 above it): one span per service operation
(`<Service>.<Operation>`, CLIENT; an SNS publish is a PRODUCER span `<topic> send`) with the
RPC and AWS attributes upstream's instrumentation records, the X-Ray trace header on every
request, and the caller's context in the message attributes of an SNS publish. The HTTP call
underneath is not traced again. `request_hook(span, service, operation, params)`,
`response_hook(span, service, operation, result)` and `propagator` as upstream's."""

from ferrotel import __version__, _native
from ferrotel.instrumentation import Instrumentor, http_client

_CLIENT, _PRODUCER = 2, 3  # the API's SpanKind values
# AWS keeps at most this many message attributes on an SQS or SNS message.
_MAX_MESSAGE_ATTRIBUTES = 10


class _MessageAttributes(dict):
    """A carrier writing each propagation field as an SNS/SQS string message attribute."""

    def __setitem__(self, key, value):
        super().__setitem__(key, {"DataType": "String", "StringValue": value})


def _inject_message_attributes(operation, entry, fields):
    attributes = entry.get("MessageAttributes") or {}
    if len(attributes) + fields > _MAX_MESSAGE_ATTRIBUTES:
        return  # AWS would refuse the message: it goes without the context
    carrier = _MessageAttributes(attributes)
    operation.inject(carrier)
    entry["MessageAttributes"] = dict(carrier)


def _call(service, service_id, operation_name, params, meta):
    """The span's name, kind and attributes; the params entries an SNS publish carries the
    context in."""
    attributes = {"rpc.system": "aws-api", "rpc.service": service_id, "rpc.method": operation_name}
    region = getattr(meta, "region_name", None)
    if region:
        attributes["cloud.region"] = region
    endpoint = getattr(meta, "endpoint_url", None)
    if endpoint:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or 443
    name, kind, entries = f"{service_id}.{operation_name}", _CLIENT, ()
    if service == "sqs":
        queue_url = params.get("QueueUrl")
        if queue_url:
            attributes["aws.queue_url"] = queue_url
            attributes["messaging.system"] = "aws.sqs"
            attributes["messaging.destination.name"] = queue_url.rsplit("/", 1)[-1]
    elif service == "sns":
        attributes["messaging.system"] = "aws.sns"
        topic_arn = params.get("TopicArn")
        if topic_arn:
            attributes["aws.sns.topic.arn"] = topic_arn
        if operation_name in ("Publish", "PublishBatch"):
            arn = topic_arn or (params.get("TargetArn") if operation_name == "Publish" else None)
            if arn:
                topic, destination = arn.rsplit(":", 1)[-1], arn
            elif operation_name == "Publish" and params.get("PhoneNumber"):
                topic, destination = "phone_number", "phone_number:**"  # a phone number is personal data
            else:
                topic = destination = "unknown"
            name, kind = f"{topic} send", _PRODUCER
            attributes["messaging.destination.name"] = destination
            entries = [params] if operation_name == "Publish" else params.get("PublishBatchRequestEntries", ())
    return name, kind, attributes, entries


def _response_attributes(service, operation_name, result):
    attributes = {}
    metadata = result.get("ResponseMetadata") if isinstance(result, dict) else None
    if metadata is None:
        return attributes, None
    request_id = metadata.get("RequestId")
    if not request_id:
        headers = metadata.get("HTTPHeaders") or {}
        request_id = headers.get("x-amzn-requestid") or headers.get("x-amz-request-id") or headers.get("x-amz-id-2")
    if request_id:
        attributes["aws.request_id"] = request_id
    if metadata.get("RetryAttempts") is not None:
        attributes["retry_attempts"] = metadata["RetryAttempts"]
    status = metadata.get("HTTPStatusCode")
    if status is not None:
        attributes["http.response.status_code"] = status
    if service == "sqs":
        message = None
        if operation_name == "SendMessage":
            message = result
        elif operation_name == "SendMessageBatch":
            message = (result.get("Successful") or [None])[0]
        elif operation_name == "ReceiveMessage":
            message = (result.get("Messages") or [None])[0]
        if message and message.get("MessageId"):
            attributes["messaging.message.id"] = message["MessageId"]
    elif service == "sns" and result.get("TopicArn"):
        attributes["aws.sns.topic.arn"] = result["TopicArn"]
    return attributes, status


class BotocoreInstrumentor(Instrumentor):
    name = "botocore"

    def _instrument(self, **kwargs):
        from botocore.client import BaseClient
        from botocore.endpoint import Endpoint
        from botocore.exceptions import ClientError
        from opentelemetry import context, propagate, trace
        from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY

        from ferrotel.propagate import AwsXRayPropagator

        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        request_hook, response_hook = kwargs.get("request_hook"), kwargs.get("response_hook")
        # AWS services pass on only the X-Ray header: other formats would lose the trace.
        propagator = kwargs.get("propagator") or AwsXRayPropagator()
        self._make_api_call = make_api_call = BaseClient._make_api_call
        self._prepare_request = prepare_request = Endpoint.prepare_request

        def traced_prepare_request(endpoint, request):
            if "X-Amzn-Trace-Id" not in request.headers:
                propagator.inject(request.headers)
            return prepare_request(endpoint, request)

        def traced_make_api_call(client, operation_name, api_params):
            try:
                meta = client.meta
                service = meta.service_model.service_name.lower()
                service_id = str(getattr(meta.service_model, "service_id", service))
                name, kind, attributes, entries = _call(service, service_id, operation_name, api_params, meta)
            except Exception:  # noqa: BLE001 - botocore internals changed: the call goes untraced
                return make_api_call(client, operation_name, api_params)
            operation = _native.start_operation(tracer, name, kind, attributes)
            if operation is None:  # another SDK's provider is installed: record through it
                from ferrotel.instrumentation import _generic

                operation = _generic.Operation(tracer, name, kind, attributes)
            if entries:
                fields = len(propagate.get_global_textmap().fields)
                for entry in entries:
                    _inject_message_attributes(operation, entry, fields)
            if callable(request_hook):
                request_hook(operation.span, service, operation_name, api_params)
            result = None
            quiet = context.attach(context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
            # ferrotel's own HTTP instrumentations (urllib3 beneath botocore) then return at
            # once, before building anything for a span they would not record.
            inside = http_client.inside_client_span.set(True)
            try:
                result = make_api_call(client, operation_name, api_params)
                return result
            except ClientError as error:
                result = getattr(error, "response", None)  # the service's answer, recorded below
                operation.record_exception(error)
                raise
            except Exception as error:
                operation.record_exception(error)
                raise
            finally:
                http_client.inside_client_span.reset(inside)
                context.detach(quiet)
                if result is not None:
                    operation.set_attributes(_response_attributes(service, operation_name, result)[0])
                if callable(response_hook):
                    response_hook(operation.span, service, operation_name, result)
                operation.end()

        BaseClient._make_api_call = traced_make_api_call
        Endpoint.prepare_request = traced_prepare_request

    def _uninstrument(self, **kwargs):
        from botocore.client import BaseClient
        from botocore.endpoint import Endpoint

        BaseClient._make_api_call = self._make_api_call
        Endpoint.prepare_request = self._prepare_request
