package awsfake

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// referencePrefix names a Secrets Manager secret through Parameter Store.
const referencePrefix = "/aws/reference/secretsmanager/"

type parameter struct {
	name     string
	versions []*paramVersion // versions[i].version == i+1
	labels   map[string]int64
}

type paramVersion struct {
	version  int64
	typ      string // String, StringList or SecureString
	value    string
	cipher   string // what GetParameters shows for SecureString without decryption
	modified time.Time
}

// parameterOut is types.Parameter on the wire.
type parameterOut struct {
	ARN              string
	DataType         string `json:",omitempty"` // absent for a Secrets Manager reference
	LastModifiedDate float64
	Name             string
	Selector         string `json:",omitempty"`
	SourceResult     string `json:",omitempty"`
	Type             string
	Value            string
	Version          int64
}

// PutParameter creates or overwrites a parameter in region and returns its
// new version. It panics on a name SSM would reject.
func (f *Fake) PutParameter(region, name, value string, secure bool) (version int64) {
	typ := "String"
	if secure {
		typ = "SecureString"
	}
	if err := checkParamName(name); err != nil {
		panic("awsfake: PutParameter: " + err.Message)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.store(region).putParam(name, typ, value, time.Now())
}

// LabelParameter attaches label to a version, moving it from any other
// version as SSM does. It panics if the version does not exist.
func (f *Fake) LabelParameter(region, name string, version int64, label string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.store(region).params[name]
	if p == nil || version < 1 || version > int64(len(p.versions)) {
		panic(fmt.Sprintf("awsfake: LabelParameter: no version %d of %q in %s", version, name, region))
	}
	p.labels[label] = version
}

func (rs *regionStore) putParam(name, typ, value string, now time.Time) int64 {
	p := rs.params[name]
	if p == nil {
		p = &parameter{name: name, labels: map[string]int64{}}
		rs.params[name] = p
	}
	v := &paramVersion{version: int64(len(p.versions)) + 1, typ: typ, value: value, modified: now}
	if typ == "SecureString" {
		// Stable per version, like a stored KMS ciphertext.
		b := make([]byte, 48)
		_, _ = rand.Read(b)
		v.cipher = "AQICAHh" + base64.StdEncoding.EncodeToString(b)
	}
	p.versions = append(p.versions, v)
	return v.version
}

func paramARN(region, name string) string {
	return "arn:aws:ssm:" + region + ":" + Account + ":parameter/" + strings.TrimPrefix(name, "/")
}

// splitParamRef splits a GetParameters name — "name", "name:selector" or
// an ssm ARN with optional selector — into name and selector. ok is false
// for an ARN of another region or account.
func splitParamRef(region, ref string) (name, selector string, fromARN, ok bool) {
	if strings.HasPrefix(ref, "arn:") {
		rest, found := strings.CutPrefix(ref, "arn:aws:ssm:"+region+":"+Account+":parameter/")
		if !found {
			return "", "", true, false
		}
		name, selector, _ = strings.Cut(rest, ":")
		return "/" + name, selector, true, true
	}
	if strings.HasPrefix(ref, referencePrefix) {
		return ref, "", false, true // the selector belongs to the secret id
	}
	name, selector, _ = strings.Cut(ref, ":")
	return name, selector, false, true
}

// lookup finds the parameter named in an ARN ("/a/b" or "a" both appear
// as "parameter/a..." there) or by plain name.
func (rs *regionStore) lookup(name string, fromARN bool) *parameter {
	if p := rs.params[name]; p != nil {
		return p
	}
	if fromARN {
		return rs.params[strings.TrimPrefix(name, "/")]
	}
	return nil
}

func (p *parameter) at(selector string) *paramVersion {
	if selector == "" {
		return p.versions[len(p.versions)-1]
	}
	v, err := strconv.ParseInt(selector, 10, 64)
	if err != nil {
		v = p.labels[selector]
	}
	if v < 1 || v > int64(len(p.versions)) {
		return nil
	}
	return p.versions[v-1]
}

func (p *parameter) out(region, selector string, v *paramVersion, decrypt bool) parameterOut {
	o := parameterOut{
		ARN:              paramARN(region, p.name),
		DataType:         "text",
		LastModifiedDate: epoch(v.modified),
		Name:             p.name,
		Type:             v.typ,
		Value:            v.value,
		Version:          v.version,
	}
	if selector != "" {
		o.Selector = ":" + selector
	}
	if v.typ == "SecureString" && !decrypt {
		o.Value = v.cipher
	}
	return o
}

// resolveParam finds one requested name. A nil result with a nil error means
// not found.
func (f *Fake) resolveParam(region, ref string, decrypt bool) (*parameterOut, *APIError) {
	rs := f.store(region)
	if strings.HasPrefix(ref, referencePrefix) {
		if !decrypt {
			return nil, validationError("WithDecryption flag must be True for retrieving a Secret Manager secret.")
		}
		return f.referenceParam(region, ref)
	}
	name, selector, fromARN, ok := splitParamRef(region, ref)
	if !ok {
		return nil, nil
	}
	p := rs.lookup(name, fromARN)
	if p == nil {
		return nil, nil
	}
	v := p.at(selector)
	if v == nil {
		return nil, nil
	}
	o := p.out(region, selector, v, decrypt)
	return &o, nil
}

// referenceParam serves /aws/reference/secretsmanager/ID[:VersionIdOrStage]
// as AWS does: Version 0, no DataType, and SourceResult (see sourceResult).
func (f *Fake) referenceParam(region, ref string) (*parameterOut, *APIError) {
	id := strings.TrimPrefix(ref, referencePrefix)
	var selector string
	if strings.HasPrefix(id, "arn:") {
		// An ARN has seven colon-separated fields; an eighth is the selector.
		if parts := strings.SplitN(id, ":", 8); len(parts) == 8 {
			id, selector = strings.Join(parts[:7], ":"), parts[7]
		}
	} else {
		id, selector, _ = strings.Cut(id, ":")
	}
	s := f.store(region).findSecret(region, id)
	if s == nil {
		return nil, nil
	}
	if f.denied("GetSecretValue", id, s.name, s.arn) {
		return nil, accessDenied("secretsmanager:GetSecretValue", s.arn)
	}
	var v *secretVersion
	if selector == "" {
		v = s.byStage(stageCurrent)
	} else if v = s.byID(selector); v == nil {
		v = s.byStage(selector)
	}
	if v == nil {
		return nil, nil
	}
	src, _ := jsonString(s.sourceResult(v))
	o := &parameterOut{
		ARN:              s.arn,
		LastModifiedDate: epoch(v.created),
		Name:             ref,
		SourceResult:     src,
		Type:             "SecureString",
		Value:            v.text(),
	}
	if selector != "" {
		o.Name = strings.TrimSuffix(ref, ":"+selector)
		o.Selector = ":" + selector
	}
	return o, nil
}

func (f *Fake) checkParamAccess(op, region string, refs ...string) *APIError {
	for _, ref := range refs {
		name, _, _, _ := splitParamRef(region, ref)
		if f.denied(op, ref, name, strings.TrimPrefix(name, "/"), paramARN(region, name)) {
			return accessDenied("ssm:"+op, paramARN(region, name))
		}
	}
	return nil
}

func (f *Fake) getParameters(region string, body []byte) (any, *APIError) {
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	switch {
	case len(in.Names) < 1:
		return nil, validationError("1 validation error detected: Value '[]' at 'names' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.Names) > 10:
		return nil, validationError("1 validation error detected: Value '[%s]' at 'names' failed to satisfy constraint: Member must have length less than or equal to 10", strings.Join(in.Names, ", "))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// IAM denies GetParameters as a whole when any name is not allowed.
	if e := f.checkParamAccess("GetParameters", region, in.Names...); e != nil {
		return nil, e
	}
	out := struct {
		InvalidParameters []string
		Parameters        []parameterOut
	}{InvalidParameters: []string{}, Parameters: []parameterOut{}}
	seen := map[string]bool{}
	for _, ref := range in.Names {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		p, e := f.resolveParam(region, ref, in.WithDecryption)
		if e != nil {
			return nil, e
		}
		if p == nil {
			out.InvalidParameters = append(out.InvalidParameters, ref)
			continue
		}
		out.Parameters = append(out.Parameters, *p)
	}
	return out, nil
}

func (f *Fake) getParameter(region string, body []byte) (any, *APIError) {
	var in struct {
		Name           string
		WithDecryption bool
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.checkParamAccess("GetParameter", region, in.Name); e != nil {
		return nil, e
	}
	p, e := f.resolveParam(region, in.Name, in.WithDecryption)
	if e != nil {
		return nil, e
	}
	if p == nil {
		name, selector, fromARN, _ := splitParamRef(region, in.Name)
		if selector != "" && f.store(region).lookup(name, fromARN) != nil {
			return nil, &APIError{Status: 400, Code: "ParameterVersionNotFound", Message: fmt.Sprintf(
				"Systems Manager could not find version %s of %s. Verify the version and try again.", selector, name)}
		}
		return nil, &APIError{Status: 400, Code: "ParameterNotFound"}
	}
	return struct{ Parameter parameterOut }{*p}, nil
}

// getParametersByPath lists the parameters one level under Path (the lock
// records of a service), in pages of at most MaxResults (default and
// maximum 10, as in SSM), name order.
func (f *Fake) getParametersByPath(region string, body []byte) (any, *APIError) {
	var in struct {
		Path           string
		Recursive      bool
		WithDecryption bool
		MaxResults     int
		NextToken      string
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if !strings.HasPrefix(in.Path, "/") {
		return nil, validationError("The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".")
	}
	switch {
	case in.MaxResults == 0:
		in.MaxResults = 10
	case in.MaxResults < 1 || in.MaxResults > 10:
		return nil, validationError("1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10", in.MaxResults)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied("GetParametersByPath", in.Path, paramARN(region, in.Path)) {
		return nil, accessDenied("ssm:GetParametersByPath", paramARN(region, in.Path))
	}
	prefix := strings.TrimSuffix(in.Path, "/") + "/"
	var names []string
	for name := range f.store(region).params {
		rest, ok := strings.CutPrefix(name, prefix)
		if ok && rest != "" && (in.Recursive || !strings.Contains(rest, "/")) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 || n > len(names) {
			return nil, &APIError{Status: 400, Code: "InvalidNextToken", Message: "The specified token isn't valid."}
		}
		start = n
	}
	out := struct {
		NextToken  string `json:",omitempty"`
		Parameters []parameterOut
	}{Parameters: []parameterOut{}}
	for _, name := range names[start:min(start+in.MaxResults, len(names))] {
		p := f.store(region).params[name]
		out.Parameters = append(out.Parameters, p.out(region, "", p.versions[len(p.versions)-1], in.WithDecryption))
	}
	if start+in.MaxResults < len(names) {
		out.NextToken = strconv.Itoa(start + in.MaxResults)
	}
	return out, nil
}

// ParameterNames lists the names of the parameters in region under prefix,
// sorted: what a test checks lock records with.
func (f *Fake) ParameterNames(region, prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for name := range f.store(region).params {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// ParameterValue returns the latest value of a parameter in region, and
// whether it exists: what a test reads a lock record with.
func (f *Fake) ParameterValue(region, name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.store(region).params[name]
	if p == nil {
		return "", false
	}
	return p.versions[len(p.versions)-1].value, true
}

func (f *Fake) putParameterAPI(region string, body []byte) (any, *APIError) {
	var in struct {
		Name      string
		Value     *string
		Type      string
		Overwrite bool
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if e := checkParamName(in.Name); e != nil {
		return nil, e
	}
	if in.Value == nil {
		return nil, validationError("1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
	}
	switch in.Type {
	case "", "String", "StringList", "SecureString":
	default:
		return nil, validationError("1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.checkParamAccess("PutParameter", region, in.Name); e != nil {
		return nil, e
	}
	rs := f.store(region)
	typ := in.Type
	if p := rs.params[in.Name]; p != nil {
		if !in.Overwrite {
			return nil, &APIError{Status: 400, Code: "ParameterAlreadyExists", Message: "The parameter already exists. To overwrite this request, set the overwrite option in the request to true."}
		}
		if typ == "" {
			typ = p.versions[len(p.versions)-1].typ
		}
	} else if typ == "" {
		return nil, validationError("A parameter type is required when you create a parameter.")
	}
	v := rs.putParam(in.Name, typ, *in.Value, time.Now())
	return struct {
		Tier    string
		Version int64
	}{"Standard", v}, nil
}

func (f *Fake) deleteParameter(region string, body []byte) (any, *APIError) {
	var in struct{ Name string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.checkParamAccess("DeleteParameter", region, in.Name); e != nil {
		return nil, e
	}
	rs := f.store(region)
	if rs.params[in.Name] == nil {
		return nil, &APIError{Status: 400, Code: "ParameterNotFound"}
	}
	delete(rs.params, in.Name)
	return struct{}{}, nil
}

// checkParamName applies SSM's naming rules for creating a parameter.
func checkParamName(name string) *APIError {
	bad := validationError("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_")
	if name == "" || len(name) > 2048 {
		return bad
	}
	if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") {
		return validationError("Parameter name must be a fully qualified name.")
	}
	lower := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ssm") {
		return bad
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.-/", c)
		if !ok {
			return bad
		}
	}
	return nil
}
