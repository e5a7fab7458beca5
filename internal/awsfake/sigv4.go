package awsfake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// authorization is the parsed SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=hex".
type authorization struct {
	accessKeyID   string
	region        string
	service       string
	signedHeaders []string
}

func parseAuthorization(h string) (authorization, error) {
	var a authorization
	if h == "" {
		return a, errors.New("missing")
	}
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return a, errors.New("not AWS4-HMAC-SHA256")
	}
	var credential, signed, signature string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			signature = v
		}
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || signed == "" || signature == "" {
		return a, errors.New("incomplete")
	}
	a.accessKeyID, a.region, a.service = scope[0], scope[2], scope[3]
	a.signedHeaders = strings.Split(signed, ";")
	return a, nil
}

// verify checks the request came from a holder of the handed-out
// credentials: same key and session token, and a signature that matches a
// re-signing of the request with the SDK's own signer. service is the
// signing name the X-Amz-Target belongs to ("" when unknown).
func (f *Fake) verify(r *http.Request, body []byte, a authorization, parseErr error, service string) *APIError {
	if parseErr != nil {
		if r.Header.Get("Authorization") == "" {
			return &APIError{Status: 403, Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"}
		}
		return &APIError{Status: 400, Code: "IncompleteSignatureException", Message: "Authorization header is malformed: " + parseErr.Error()}
	}
	if a.accessKeyID != f.AccessKeyID || r.Header.Get("X-Amz-Security-Token") != f.SessionToken {
		return &APIError{Status: 403, Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}
	if service != "" && a.service != service {
		return &APIError{Status: 403, Code: "InvalidSignatureException", Message: "Credential should be scoped to correct service: '" + service + "'. "}
	}
	mismatch := &APIError{Status: 403, Code: "InvalidSignatureException", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}

	// No check of the signing time against the clock: clients inside a
	// testing/synctest bubble sign with the bubble's fake time.
	signingTime, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return mismatch
	}

	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return mismatch
	}
	req.Host = r.Host
	req.ContentLength = int64(len(body))
	for _, h := range a.signedHeaders {
		switch h {
		case "host", "content-length", "x-amz-date", "x-amz-security-token":
			// The signer derives these itself.
			continue
		}
		vs := r.Header.Values(h)
		if len(vs) == 0 {
			return mismatch
		}
		req.Header[http.CanonicalHeaderKey(h)] = vs
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: f.AccessKeyID, SecretAccessKey: f.SecretAccessKey, SessionToken: f.SessionToken}
	err = v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), a.service, a.region, signingTime)
	if err != nil {
		return mismatch
	}
	want := req.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(want), []byte(r.Header.Get("Authorization"))) != 1 {
		return mismatch
	}
	return nil
}
