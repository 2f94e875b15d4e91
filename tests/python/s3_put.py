"""Puts a file into an S3 bucket with boto3 (moto in the tests), as AWS
Private CA writes its CRLs and audit reports; prints the new ETag.

usage: s3_put.py ENDPOINT BUCKET KEY FILE
"""
import sys

import boto3


def main():
    endpoint, bucket, key, path = sys.argv[1:5]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with open(path, "rb") as f:
        r = s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    print(r["ETag"])


if __name__ == "__main__":
    main()
