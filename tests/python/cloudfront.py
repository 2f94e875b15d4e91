"""moto's CloudFront through boto3: create a distribution, or list every
invalidation's paths (what revocd asked CloudFront to purge).

usage: cloudfront.py ENDPOINT create
       cloudfront.py ENDPOINT paths DISTRIBUTION_ID
"""
import sys
import time

import boto3


def client(endpoint):
    return boto3.client(
        "cloudfront",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def main():
    cf = client(sys.argv[1])
    if sys.argv[2] == "create":
        r = cf.create_distribution(
            DistributionConfig={
                "CallerReference": str(time.time()),
                "Comment": "revocd OCSP",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "origin",
                            "DomainName": "ocsp.example.com",
                            "CustomOriginConfig": {
                                "HTTPPort": 80,
                                "HTTPSPort": 443,
                                "OriginProtocolPolicy": "http-only",
                            },
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "origin",
                    "ViewerProtocolPolicy": "allow-all",
                    "MinTTL": 0,
                    "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                },
            }
        )
        print(r["Distribution"]["Id"])
        return
    dist = sys.argv[3]
    listed = cf.list_invalidations(DistributionId=dist)["InvalidationList"]
    for item in listed.get("Items", []):
        inv = cf.get_invalidation(DistributionId=dist, Id=item["Id"])["Invalidation"]
        for p in inv["InvalidationBatch"]["Paths"].get("Items", []):
            print(inv["Id"], p)


if __name__ == "__main__":
    main()
