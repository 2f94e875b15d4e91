"""AWS Private CA, SQS and EventBridge as the tests drive them (boto3
against moto). Every command prints one JSON line.

usage: pca.py ENDPOINT COMMAND ...
  ca DIR                          a root CA (ACTIVE), its certificate in
                                  DIR/ca.pem
  setup DIR                       a root CA as `ca` does; a queue (2 s
                                  visibility) with a
                                  dead-letter queue; an EventBridge rule
                                  sending source aws.acm-pca to the queue
  issue CA_ARN DIR NAME [--event] a P-256 leaf from the CA, in DIR/NAME.pem;
                                  --event: the issuance event too
  revoke CA_ARN SERIAL REASON [--cloudtrail] [--native CERT_ARN]
                                  RevokeCertificate, then the events AWS
                                  would emit for it
  crl-event CA_ARN                the CRL generation event
  put-event JSON                  one EventBridge entry, as given
  send QUEUE BODY                 a raw SQS message
  depth QUEUE                     messages visible + in flight
  measure CA_ARN DIR OCSP_URL N   N leaves revoked one after another, each
                                  through RevokeCertificate and its
                                  CloudTrail event; for each, the time from
                                  putting the event (it reaches SQS at once)
                                  to the first OCSP answer at OCSP_URL saying
                                  revoked (polled every 10 ms); prints the
                                  median, p99 and max
"""
import datetime
import json
import statistics
import sys
import time
import urllib.request

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

ENDPOINT = sys.argv[1]
KW = dict(
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
pca = boto3.client("acm-pca", **KW)
sqs = boto3.client("sqs", **KW)
events = boto3.client("events", **KW)

PCA_REASONS = {
    "KEY_COMPROMISE",
    "SUPERSEDED",
    "UNSPECIFIED",
    "CESSATION_OF_OPERATION",
    "AFFILIATION_CHANGED",
    "PRIVILEGE_WITHDRAWN",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "A_A_COMPROMISE",
}


def out(v):
    print(json.dumps(v), flush=True)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def put(entry):
    r = events.put_events(Entries=[entry])
    assert r["FailedEntryCount"] == 0, r


def new_ca(d):
    ca = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": "revocd test Private CA", "Organization": "revocd"},
        },
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=ca)["Csr"]
    root = pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr.encode(),
        SigningAlgorithm="SHA256WITHRSA",
        TemplateArn="arn:aws:acm-pca:::template/RootCACertificate/V1",
        Validity={"Value": 10, "Type": "YEARS"},
    )["CertificateArn"]
    pem = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=root)["Certificate"]
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=ca, Certificate=pem.encode())
    with open(f"{d}/ca.pem", "w") as f:
        f.write(pem + "\n")
    return ca


def setup(d):
    ca = new_ca(d)
    dlq = sqs.create_queue(QueueName="revocd-events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="revocd-events",
        Attributes={
            "VisibilityTimeout": "2",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "50"}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="revocd-pca", EventPattern=json.dumps({"source": ["aws.acm-pca"]}))
    events.put_targets(Rule="revocd-pca", Targets=[{"Id": "revocd", "Arn": queue_arn}])
    out({"ca": ca, "queue": queue, "dlq": dlq})


def issue(ca, d, name, event):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr.public_bytes(serialization.Encoding.PEM),
        SigningAlgorithm="SHA256WITHRSA",
        Validity={"Value": 30, "Type": "DAYS"},
    )["CertificateArn"]
    pem = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    with open(f"{d}/{name}.pem", "w") as f:
        f.write(pem + "\n")
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "X")
    if event:
        put(
            {
                "Source": "aws.acm-pca",
                "DetailType": "ACM Private CA Certificate Issuance",
                "Resources": [ca, arn],
                "Detail": json.dumps({"result": "success"}),
            }
        )
    out({"arn": arn, "serial": serial})


def cloudtrail(ca, serial, reason, error=None):
    detail = {
        "eventVersion": "1.08",
        "eventTime": now_iso(),
        "eventSource": "acm-pca.amazonaws.com",
        "eventName": "RevokeCertificate",
        "awsRegion": "us-east-1",
        "requestParameters": {
            "certificateAuthorityArn": ca,
            "certificateSerial": ":".join(
                serial.rjust(len(serial) + len(serial) % 2, "0")[i : i + 2].lower()
                for i in range(0, len(serial) + len(serial) % 2, 2)
            ),
            "revocationReason": reason,
        },
        "responseElements": None,
        "eventType": "AwsApiCall",
    }
    if error:
        detail["errorCode"] = error
        detail["errorMessage"] = "the call failed"
    return {
        "Source": "aws.acm-pca",
        "DetailType": "AWS API Call via CloudTrail",
        "Resources": [],
        "Detail": json.dumps(detail),
    }


def revoke(ca, serial, reason, with_cloudtrail, native):
    assert reason in PCA_REASONS, reason
    pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=serial.lower(), RevocationReason=reason)
    if with_cloudtrail:
        put(cloudtrail(ca, serial, reason))
    if native:
        put(
            {
                "Source": "aws.acm-pca",
                "DetailType": "ACM Private CA Certificate Revocation",
                "Resources": [ca, native],
                "Detail": json.dumps({"result": "success"}),
            }
        )
    out({"revoked": serial, "at": time.time()})


def ocsp_status(ca_cert, cert, url):
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, ca_cert, hashes.SHA1()).build()
    body = req.public_bytes(serialization.Encoding.DER)
    r = urllib.request.Request(url, data=body, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(r, timeout=5) as resp:
        answer = ocsp.load_der_ocsp_response(resp.read())
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return answer.response_status.name
    return answer.certificate_status.name


def measure(ca, d, url, n):
    ca_cert = x509.load_pem_x509_certificate(open(f"{d}/ca.pem", "rb").read())
    took = []
    for i in range(n):
        name = f"measure-{i}"
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        arn = pca.issue_certificate(
            CertificateAuthorityArn=ca,
            Csr=csr.public_bytes(serialization.Encoding.PEM),
            SigningAlgorithm="SHA256WITHRSA",
            Validity={"Value": 30, "Type": "DAYS"},
        )["CertificateArn"]
        pem = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        serial = format(cert.serial_number, "X")
        pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=serial.lower(), RevocationReason="SUPERSEDED")
        sent = time.monotonic()
        put(cloudtrail(ca, serial, "SUPERSEDED"))
        deadline = sent + 60
        status = None
        while time.monotonic() < deadline:
            status = ocsp_status(ca_cert, cert, url)
            if status == "REVOKED":
                break
            time.sleep(0.01)
        if status != "REVOKED":
            out({"error": f"{serial} not revoked after 60 s: {status}"})
            sys.exit(1)
        took.append(time.monotonic() - sent)
    took.sort()
    p99 = took[min(len(took) - 1, int(round(0.99 * (len(took) - 1))))]
    out(
        {
            "n": n,
            "median_s": statistics.median(took),
            "p99_s": p99,
            "max_s": took[-1],
            "min_s": took[0],
        }
    )


def main():
    cmd, args = sys.argv[2], sys.argv[3:]
    if cmd == "setup":
        setup(args[0])
    elif cmd == "ca":
        out({"ca": new_ca(args[0])})
    elif cmd == "issue":
        issue(args[0], args[1], args[2], "--event" in args[3:])
    elif cmd == "revoke":
        native = args[args.index("--native") + 1] if "--native" in args else None
        revoke(args[0], args[1], args[2], "--cloudtrail" in args, native)
    elif cmd == "crl-event":
        put(
            {
                "Source": "aws.acm-pca",
                "DetailType": "ACM Private CA CRL Generation",
                "Resources": [args[0]],
                "Detail": json.dumps({"result": "success"}),
            }
        )
        out({"ok": True})
    elif cmd == "failed-revoke-event":
        put(cloudtrail(args[0], args[1], "KEY_COMPROMISE", error="ResourceNotFoundException"))
        out({"ok": True})
    elif cmd == "revoke-event":
        put(cloudtrail(args[0], args[1], args[2]))
        out({"ok": True})
    elif cmd == "put-event":
        put(json.loads(args[0]))
        out({"ok": True})
    elif cmd == "send":
        sqs.send_message(QueueUrl=args[0], MessageBody=args[1])
        out({"ok": True})
    elif cmd == "depth":
        a = sqs.get_queue_attributes(
            QueueUrl=args[0],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        out({"visible": int(a["ApproximateNumberOfMessages"]), "in_flight": int(a["ApproximateNumberOfMessagesNotVisible"])})
    elif cmd == "measure":
        measure(args[0], args[1], args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
