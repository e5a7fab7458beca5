package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

type secret struct {
	name     string
	arn      string
	created  time.Time
	changed  time.Time
	versions []*secretVersion // creation order
}

type secretVersion struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

func (v *secretVersion) text() string {
	if v.str != nil {
		return *v.str
	}
	return base64.StdEncoding.EncodeToString(v.bin)
}

// PutSecretString creates the secret, or adds a version that becomes
// AWSCURRENT (the old current one becomes AWSPREVIOUS). It returns the ARN.
func (f *Fake) PutSecretString(region, name, value string) (arn string) {
	return f.putSecret(region, name, &secretVersion{str: &value})
}

// PutSecretBinary is PutSecretString for a SecretBinary value.
func (f *Fake) PutSecretBinary(region, name string, value []byte) (arn string) {
	return f.putSecret(region, name, &secretVersion{bin: slices.Clone(value)})
}

// SecretVersionID returns the version id that carries stage, or "".
func (f *Fake) SecretVersionID(region, name, stage string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.store(region).findSecret(region, name)
	if s == nil {
		return ""
	}
	if v := s.byStage(stage); v != nil {
		return v.id
	}
	return ""
}

func (f *Fake) putSecret(region, name string, v *secretVersion) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	rs := f.store(region)
	s := rs.secrets[name]
	if s == nil {
		s = &secret{
			name:    name,
			arn:     "arn:aws:secretsmanager:" + region + ":" + Account + ":secret:" + name + "-" + randString(alnum, 6),
			created: now,
		}
		rs.secrets[name] = s
	}
	for _, old := range s.versions {
		old.stages = slices.DeleteFunc(old.stages, func(st string) bool { return st == stagePrevious })
		if i := slices.Index(old.stages, stageCurrent); i >= 0 {
			old.stages[i] = stagePrevious
		}
	}
	v.id = newUUID()
	v.stages = []string{stageCurrent}
	v.created = now
	s.versions = append(s.versions, v)
	s.changed = now
	return s.arn
}

// findSecret resolves a SecretId: name, full ARN, or partial ARN (without
// the random suffix). Callers hold mu.
func (rs *regionStore) findSecret(region, id string) *secret {
	rest, isARN := strings.CutPrefix(id, "arn:aws:secretsmanager:"+region+":"+Account+":secret:")
	if !isARN {
		if strings.HasPrefix(id, "arn:") {
			return nil
		}
		return rs.secrets[id]
	}
	if s := rs.secrets[rest]; s != nil {
		return s // partial ARN
	}
	if len(rest) > 7 && rest[len(rest)-7] == '-' {
		if s := rs.secrets[rest[:len(rest)-7]]; s != nil && s.arn == id {
			return s
		}
	}
	return nil
}

func (s *secret) byStage(stage string) *secretVersion {
	for _, v := range s.versions {
		if slices.Contains(v.stages, stage) {
			return v
		}
	}
	return nil
}

func (s *secret) byID(id string) *secretVersion {
	for _, v := range s.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

type secretValueOut struct {
	ARN           string
	CreatedDate   float64
	Name          string
	SecretBinary  []byte  `json:",omitempty"` // base64 on the wire
	SecretString  *string `json:",omitempty"`
	VersionId     string
	VersionStages []string
}

func (s *secret) valueOut(v *secretVersion) secretValueOut {
	return secretValueOut{
		ARN:           s.arn,
		CreatedDate:   epoch(v.created),
		Name:          s.name,
		SecretBinary:  v.bin,
		SecretString:  v.str,
		VersionId:     v.id,
		VersionStages: slices.Clone(v.stages),
	}
}

// sourceResultOut is the SourceResult of a /aws/reference/secretsmanager/
// parameter: the GetSecretValue response, value included, as a JSON
// string. This is the shape captured from AWS (SSM's Java serializer):
// camelCase keys except "ARN", and createdDate as text in US format.
// AWS's user guide shows PascalCase keys and an epoch number instead, so a
// reader must accept both. How AWS renders a SecretBinary here is not
// known; secretBinary (base64) is a guess.
type sourceResultOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"name"`
	VersionID     string   `json:"versionId"`
	SecretString  *string  `json:"secretString,omitempty"`
	SecretBinary  []byte   `json:"secretBinary,omitempty"`
	VersionStages []string `json:"versionStages"`
	CreatedDate   string   `json:"createdDate"`
}

func (s *secret) sourceResult(v *secretVersion) sourceResultOut {
	return sourceResultOut{
		ARN:           s.arn,
		Name:          s.name,
		VersionID:     v.id,
		SecretString:  v.str,
		SecretBinary:  v.bin,
		VersionStages: slices.Clone(v.stages),
		CreatedDate:   v.created.UTC().Format("Jan 2, 2006, 3:04:05 PM"),
	}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func secretNotFound() *APIError {
	return &APIError{Status: 400, Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret."}
}

// lookupSecret is the common start of secret operations. Callers hold mu.
func (f *Fake) lookupSecret(op, region, id string) (*secret, *APIError) {
	if id == "" {
		return nil, validationError("1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
	}
	s := f.store(region).findSecret(region, id)
	var name, arn string
	if s != nil {
		name, arn = s.name, s.arn
	}
	if f.denied(op, id, name, arn) {
		return nil, accessDenied("secretsmanager:"+op, id)
	}
	if s == nil {
		return nil, secretNotFound()
	}
	return s, nil
}

func (f *Fake) getSecretValue(region string, body []byte) (any, *APIError) {
	var in struct {
		SecretId     string
		VersionId    string
		VersionStage string
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.lookupSecret("GetSecretValue", region, in.SecretId)
	if e != nil {
		return nil, e
	}
	var v *secretVersion
	switch {
	case in.VersionId != "":
		v = s.byID(in.VersionId)
		if v == nil {
			return nil, &APIError{Status: 400, Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret value for VersionId: " + in.VersionId}
		}
		if in.VersionStage != "" && !slices.Contains(v.stages, in.VersionStage) {
			return nil, &APIError{Status: 400, Code: "ResourceNotFoundException", Message: fmt.Sprintf(
				"Secrets Manager can't find the specified secret value for VersionId: %s and staging label: %s", in.VersionId, in.VersionStage)}
		}
	default:
		stage := in.VersionStage
		if stage == "" {
			stage = stageCurrent
		}
		v = s.byStage(stage)
		if v == nil {
			return nil, &APIError{Status: 400, Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret value for staging label: " + stage}
		}
	}
	return s.valueOut(v), nil
}

func (f *Fake) describeSecret(region string, body []byte) (any, *APIError) {
	var in struct{ SecretId string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.lookupSecret("DescribeSecret", region, in.SecretId)
	if e != nil {
		return nil, e
	}
	// Only versions with a staging label are listed, as in AWS.
	stages := map[string][]string{}
	for _, v := range s.versions {
		if len(v.stages) > 0 {
			stages[v.id] = slices.Clone(v.stages)
		}
	}
	return struct {
		ARN                string
		CreatedDate        float64
		LastChangedDate    float64
		Name               string
		RotationEnabled    bool
		VersionIdsToStages map[string][]string
	}{s.arn, epoch(s.created), epoch(s.changed), s.name, false, stages}, nil
}
