// Package policy builds the least-privilege IAM policy a task role needs for a
// configuration (`agent policy`), and the trust policy that lets ECS tasks
// assume that role.
//
// Every resource is exact where the reference makes it knowable: a parameter
// ARN for each name, a secret ARN for each secret (with the "-??????" suffix
// wildcard where only the name is known). Wildcards appear only where AWS or
// the agent leave no choice, and each one comes with a note that says why:
// kms:Decrypt (the key is not named by a reference), ecs:DescribeTaskDefinition
// (no resource-level permissions), the service of a redeploy action that
// reads it from task metadata, the parameters and secrets `agent watch`
// discovers at run time, and those the change feed's clients ask about.
package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
)

// LockPrefix is the Parameter Store path under which the redeploy actors
// (in-task actions and watchers) keep their lock records. The policy grants
// the lock actions under it only.
const LockPrefix = redeploy.LockPrefix

// Version is the IAM policy language version every document uses.
const Version = "2012-10-17"

// Statement ids, stable so that a diff of two generated policies is readable.
const (
	SidReadParameters       = "ReadParameters"
	SidReadSecrets          = "ReadSecrets"
	SidPollSecrets          = "PollSecrets"
	SidDecryptViaSSM        = "DecryptViaSSM"
	SidDecryptViaSecrets    = "DecryptViaSecretsManager"
	SidRedeploy             = "Redeploy"
	SidRedeployLock         = "RedeployLock"
	SidWatchServices        = "WatchServices"
	SidWatchTaskDefinitions = "WatchTaskDefinitions"
	SidWatchParameters      = "WatchParameters"
	SidWatchSecrets         = "WatchSecrets"
	SidWatchRedeployLock    = "WatchRedeployLock"
	SidFeedParameters       = "FeedParameters"
	SidFeedSecrets          = "FeedSecrets"
	SidEcsTasksAssumeRole   = "EcsTasksAssumeRole"
)

// ecsTasksPrincipal is the service principal ECS tasks assume roles as, in
// every partition.
const ecsTasksPrincipal = "ecs-tasks.amazonaws.com"

// Commands that use the role. run, exec and watch poll for rotation, which
// needs secretsmanager:DescribeSecret; run and exec run onChange actions.
const (
	CommandInit  = "init"
	CommandRun   = "run"
	CommandExec  = "exec"
	CommandWatch = "watch"
)

// Input is what the policy is for.
type Input struct {
	Settings  *config.Settings // the agent's secrets and onChange actions; nil for a watch-only policy
	Region    string           // the task's region, for bare Parameter Store names and redeploy; may be "" if nothing needs it
	Account   string           // the task's account, for bare names; "" → "*" (and a note)
	Partition string           // "" → the partition of Region (aws, aws-cn, aws-us-gov), else "aws"
	Watch     []Service        // agent watch: the services it watches; their secrets are not known in advance
	Feed      *Feed            // agent watch --feed-addr: the change feed it serves; nil for none
	Commands  []string         // which agent commands use this role; empty → run (with Settings) and watch (with Watch or Feed)
}

// Feed is the change feed a watcher serves (docs/FEED.md). It polls the
// metadata of whatever references its agents ask about, so the policy
// cannot name them: it grants the metadata reads on every parameter and
// secret of the regions it serves and the task's account, or, with
// Prefixes, on the names that start with one of them ("/prod/" →
// parameter/prod/*, secret:prod/*). Never a value: no GetSecretValue, no
// kms:Decrypt.
type Feed struct {
	Prefixes []string
	// Regions are the regions the feed serves (agent watch
	// --feed-regions), all in one partition; none means the task's region,
	// as for agent watch.
	Regions []string
}

// Service is one ECS service that `agent watch` watches. Cluster and Service
// may be names or ARNs; an empty Cluster is ECS's "default"; an empty Region
// is Input.Region.
type Service struct{ Cluster, Service, Region string }

// Document is an IAM policy document. Marshal it with JSON for a stable
// field and resource order.
type Document struct {
	Version   string
	Statement []Statement
}

// Statement is one IAM policy statement. Principal is set only in a trust
// policy, which has no Resource.
type Statement struct {
	Sid       string
	Effect    string
	Principal map[string]string `json:",omitempty"`
	Action    []string
	Resource  []string                       `json:",omitempty"`
	Condition map[string]map[string][]string `json:",omitempty"`
}

// JSON is the document indented with two spaces and ending in a newline, the
// form `agent policy` prints.
func (d Document) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Size limits IAM puts on policies, counting characters without white space.
const (
	managedPolicyMaxChars = 6144
	inlineRoleMaxChars    = 10240
)

const (
	smReferencePrefix = "/aws/reference/secretsmanager/"
	publicPrefix      = "/aws/service/"
)

var (
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$`)
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
)

// Build returns the identity policy for in, with notes for stderr: every
// wildcard it had to use and why, and what the user can do about it. An
// error means in cannot be turned into a correct policy (a bare parameter
// name with no region, an unknown command, nothing to grant).
func Build(in Input) (Document, []string, error) {
	b, err := newBuilder(in)
	if err != nil {
		return Document{}, nil, err
	}
	if in.Settings != nil {
		for _, s := range in.Settings.Secrets {
			if err := b.secret(s); err != nil {
				return Document{}, nil, err
			}
		}
		if err := b.redeploy(in.Settings.OnChange); err != nil {
			return Document{}, nil, err
		}
	}
	for i, w := range in.Watch {
		if err := b.watch(i, w); err != nil {
			return Document{}, nil, err
		}
	}
	if in.Feed != nil {
		if err := b.feed(*in.Feed); err != nil {
			return Document{}, nil, err
		}
	}
	doc := b.document()
	b.sizeNote(doc)
	return doc, b.notes, nil
}

// Trust returns the trust policy that lets ECS tasks assume the role. When
// in.Account is known it carries the confused-deputy conditions ECS
// recommends (aws:SourceAccount, and aws:SourceArn on the account's ECS
// resources in in.Region, or any region if none is given); otherwise it has
// none, and a note says so.
func Trust(in Input) (Document, []string, error) {
	partition, err := partitionOf(in)
	if err != nil {
		return Document{}, nil, err
	}
	if in.Region != "" && !regionRE.MatchString(in.Region) {
		return Document{}, nil, fmt.Errorf("region %q does not look like \"us-east-1\"", in.Region)
	}
	if in.Account != "" && !accountRE.MatchString(in.Account) {
		return Document{}, nil, fmt.Errorf("account must be 12 digits, got %q", in.Account)
	}
	st := Statement{
		Sid:       SidEcsTasksAssumeRole,
		Effect:    "Allow",
		Principal: map[string]string{"Service": ecsTasksPrincipal},
		Action:    []string{"sts:AssumeRole"},
	}
	var notes []string
	if in.Account == "" {
		notes = append(notes, "account unknown: the trust policy has no aws:SourceAccount and aws:SourceArn conditions, which ECS recommends against the confused deputy problem — pass --account")
	} else {
		region := in.Region
		if region == "" {
			region = "*"
		}
		st.Condition = map[string]map[string][]string{
			"ArnLike":      {"aws:SourceArn": {arn(partition, "ecs", region, in.Account, "*")}},
			"StringEquals": {"aws:SourceAccount": {in.Account}},
		}
	}
	return Document{Version: Version, Statement: []Statement{st}}, notes, nil
}

// builder collects resources by statement and the notes that explain them.
type builder struct {
	in         Input
	partition  string
	account    string // "*" when unknown
	polls      bool   // some command polls: DescribeSecret
	actions    bool   // some command runs onChange actions
	watching   bool
	params     set // ssm:GetParameters
	secrets    set // secretsmanager:GetSecretValue
	describe   set // secretsmanager:DescribeSecret (polled secrets)
	viaSSM     set // kms:ViaService values for Parameter Store
	viaSM      set // kms:ViaService values for Secrets Manager
	redeploys  set // ecs:UpdateService, ecs:DescribeServices
	locks      set // the lock prefix, per region
	watchSvcs  set
	watchParam set
	watchSecr  set
	watchLocks set // each watched service's lock path and records
	feedParam  set // the change feed's metadata reads
	feedSecr   set
	partitions set
	notes      []string
	noted      set
}

type set map[string]bool

func (s set) add(vs ...string) {
	for _, v := range vs {
		s[v] = true
	}
}

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for v := range s {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func newBuilder(in Input) (*builder, error) {
	b := &builder{in: in, params: set{}, secrets: set{}, describe: set{}, viaSSM: set{}, viaSM: set{},
		redeploys: set{}, locks: set{}, watchSvcs: set{}, watchParam: set{}, watchSecr: set{}, watchLocks: set{},
		feedParam: set{}, feedSecr: set{}, partitions: set{}, noted: set{}}
	var err error
	if b.partition, err = partitionOf(in); err != nil {
		return nil, err
	}
	if in.Region != "" && !regionRE.MatchString(in.Region) {
		return nil, fmt.Errorf("region %q does not look like \"us-east-1\"", in.Region)
	}
	switch {
	case in.Account == "":
		b.account = "*"
	case accountRE.MatchString(in.Account):
		b.account = in.Account
	default:
		return nil, fmt.Errorf("account must be 12 digits, got %q", in.Account)
	}
	if in.Settings == nil && len(in.Watch) == 0 && in.Feed == nil {
		return nil, fmt.Errorf("nothing to grant: give a configuration with secrets, services to watch, or the change feed")
	}
	commands := in.Commands
	if len(commands) == 0 {
		if in.Settings != nil {
			commands = append(commands, CommandRun)
			b.note("no command given: the policy is for agent run (init needs no secretsmanager:DescribeSecret and no redeploy grants) — pass --command to choose")
		}
		if len(in.Watch) > 0 || in.Feed != nil {
			commands = append(commands, CommandWatch)
		}
	}
	for _, c := range commands {
		switch c {
		case CommandInit:
		case CommandRun, CommandExec:
			b.polls, b.actions = true, true
		case CommandWatch:
			b.polls, b.watching = true, true
		default:
			return nil, fmt.Errorf("command %q: want one of init, run, exec, watch", c)
		}
	}
	if b.watching && len(in.Watch) == 0 && in.Feed == nil {
		return nil, fmt.Errorf("command watch: no services to watch and no change feed to serve")
	}
	if len(in.Watch) > 0 && !b.watching {
		return nil, fmt.Errorf("services to watch given, but the commands (%s) do not include watch", strings.Join(commands, ", "))
	}
	if in.Feed != nil && !b.watching {
		return nil, fmt.Errorf("the change feed is served by agent watch, but the commands (%s) do not include watch", strings.Join(commands, ", "))
	}
	if b.account == "*" {
		b.note("account unknown: resource ARNs use * for the account — pass --account")
	}
	return b, nil
}

// partitionOf is in.Partition, else the partition of in.Region, else "aws".
func partitionOf(in Input) (string, error) {
	p := in.Partition
	switch p {
	case "", "aws", "aws-cn", "aws-us-gov":
	default:
		return "", fmt.Errorf("partition must be aws, aws-cn or aws-us-gov, got %q", p)
	}
	if in.Region == "" {
		if p == "" {
			p = "aws"
		}
		return p, nil
	}
	rp := fetch.RegionPartition(in.Region)
	if p == "" {
		return rp, nil
	}
	if p != rp {
		return "", fmt.Errorf("region %q is not in partition %q", in.Region, p)
	}
	return p, nil
}

func (b *builder) note(s string) {
	if !b.noted[s] {
		b.noted.add(s)
		b.notes = append(b.notes, s)
	}
}

func arn(partition, service, region, account, resource string) string {
	return "arn:" + partition + ":" + service + ":" + region + ":" + account + ":" + resource
}

// parameterARN is the ARN IAM evaluates for a parameter name: the leading
// "/" of a hierarchical name is dropped ("parameter/prod/x"), a plain name
// is kept ("parameter/dbname").
func parameterARN(partition, region, account, name string) string {
	return arn(partition, "ssm", region, account, "parameter/"+strings.TrimPrefix(name, "/"))
}

// taskRegion is the region for a bare name or a service from task metadata.
func (b *builder) taskRegion(what string) (string, error) {
	if b.in.Region == "" {
		return "", fmt.Errorf("%s needs the task's region, and none was given — pass --region or set AWS_REGION", what)
	}
	return b.in.Region, nil
}

func (b *builder) secret(s config.Secret) error {
	r := s.Ref
	what := fmt.Sprintf("secret %s (valueFrom %s)", s.Name, r.Raw)
	switch r.Service {
	case fetch.ParameterStore:
		partition, region, account := r.Partition, r.Region, r.Account
		if !r.IsARN {
			var err error
			if region, err = b.taskRegion(what); err != nil {
				return err
			}
			partition, account = b.partition, b.account
			if fetch.RegionPartition(region) != partition {
				return fmt.Errorf("%s: region %q is not in partition %q", what, region, partition)
			}
		}
		b.crossAccount(what, account)
		b.partitions.add(partition)
		if strings.HasPrefix(r.Parameter, publicPrefix) {
			// AWS owns public parameters: their ARN has no account, and
			// they are plain String parameters, so no key is involved.
			b.params.add(parameterARN(partition, region, "", r.Parameter))
			return nil
		}
		// A selector ("name:3", "name:label") reads the parameter itself.
		b.params.add(parameterARN(partition, region, account, r.Parameter))
		if !r.ViaSecretsManager {
			b.viaSSM.add(viaService("ssm", region)...)
			return nil
		}
		// Parameter Store asks Secrets Manager with the caller's
		// permissions, and the poll asks DescribeSecret directly; the
		// secret is in the parameter's region and account, by name.
		id := strings.TrimPrefix(r.Parameter, smReferencePrefix)
		sec := arn(partition, "secretsmanager", region, account, "secret:"+id+"-??????")
		b.secrets.add(sec)
		if b.polls {
			b.describe.add(sec)
		}
		b.viaSM.add(viaService("secretsmanager", region)...)
	case fetch.SecretsManager:
		b.crossAccount(what, r.Account)
		b.partitions.add(r.Partition)
		sec := SecretResource(r.SecretID)
		b.secrets.add(sec)
		if b.polls && r.VersionID == "" {
			// A version id never moves, so it is never polled.
			b.describe.add(sec)
		}
		b.viaSM.add(viaService("secretsmanager", r.Region)...)
	default:
		return fmt.Errorf("%s: unknown service %v", what, r.Service)
	}
	return nil
}

func (b *builder) crossAccount(what, account string) {
	if b.account != "*" && account != b.account {
		b.note(fmt.Sprintf("%s is in account %s: the owner must also allow this role in the secret's resource policy (or share the parameter) and in the key policy of its customer managed key — the AWS managed keys cannot be used across accounts", what, account))
	}
}

// SecretResource is the IAM resource for the secret a Secrets Manager ARN
// (up to its id, as fetch.Ref.SecretID) names. Secret ARNs end in "-" and
// six random characters; a reference may leave them out (a partial ARN).
// An id whose last "-" segment is exactly six letters or digits is taken as
// complete; any other gets "-??????", which matches that suffix and nothing
// longer.
func SecretResource(secretID string) string {
	i := strings.LastIndex(secretID, ":secret:")
	id := secretID[i+len(":secret:"):]
	if hasSuffix(id) {
		return secretID
	}
	return secretID + "-??????"
}

func hasSuffix(id string) bool {
	i := strings.LastIndexByte(id, '-')
	if i < 1 || len(id)-i-1 != 6 {
		return false
	}
	for _, c := range id[i+1:] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// viaService is the kms:ViaService value of a service in a region:
// SERVICE.REGION.amazonaws.com. In the China regions, whose endpoints end in
// amazonaws.com.cn, both forms are allowed: either names the same service in
// the same region, so the second one widens nothing.
func viaService(service, region string) []string {
	v := service + "." + region + ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		return []string{v, v + ".cn"}
	}
	return []string{v}
}

func (b *builder) redeploy(actions []config.Action) error {
	var found bool
	for i, a := range actions {
		if a.Redeploy == nil {
			continue
		}
		found = true
		if !b.actions {
			continue
		}
		what := fmt.Sprintf("onChange[%d].redeploy", i)
		svc, fromMetadata, err := b.serviceARN(what, a.Redeploy.Cluster, a.Redeploy.Service, "", "*")
		if err != nil {
			return err
		}
		b.redeploys.add(svc)
		if fromMetadata {
			b.note(fmt.Sprintf("%s takes its cluster or service from task metadata, so the policy allows %s (* where not given): set cluster and service in the action to narrow it to the one service", what, svc))
		}
		region, err := b.taskRegion(what)
		if err != nil {
			return err
		}
		b.locks.add(parameterARN(b.partition, region, b.account, LockPrefix+"*"))
	}
	if found && !b.actions {
		b.note("onChange has redeploy, but no command given runs onChange actions (only run and exec do): no ECS grants")
	}
	return nil
}

func (b *builder) watch(i int, w Service) error {
	what := fmt.Sprintf("watched service %d (%s)", i+1, w.Service)
	if w.Service == "" {
		return fmt.Errorf("watched service %d: service name is empty", i+1)
	}
	cluster := w.Cluster
	if cluster == "" {
		cluster = "default"
	}
	svc, _, err := b.serviceARN(what, cluster, w.Service, w.Region, "")
	if err != nil {
		return err
	}
	b.watchSvcs.add(svc)
	// The service's partition, region and account, from its ARN.
	f := strings.SplitN(svc, ":", 6)
	partition, region, account := f[1], f[3], f[4]
	// The lock records this service shares with its tasks' redeploy
	// actions and other watchers: the path (GetParametersByPath) and the
	// records under it.
	names := strings.Split(strings.TrimPrefix(f[5], "service/"), "/")
	lock := redeploy.LockPath(names[0], names[1])
	b.watchLocks.add(parameterARN(partition, region, account, lock))
	b.watchLocks.add(parameterARN(partition, region, account, lock+"/*"))
	b.watchParam.add(parameterARN(partition, region, account, "*"))
	b.watchSecr.add(arn(partition, "secretsmanager", region, account, "secret:*"))
	return nil
}

// prefixRE is what a feed prefix may hold: the characters of Parameter
// Store and Secrets Manager names, and no IAM wildcard.
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.\-/+=@]+$`)

func (b *builder) feed(f Feed) error {
	regions := f.Regions
	if len(regions) == 0 {
		region, err := b.taskRegion("the change feed")
		if err != nil {
			return err
		}
		regions = []string{region}
	}
	for _, r := range regions {
		if !regionRE.MatchString(r) {
			return fmt.Errorf("feed region %q does not look like \"us-east-1\"", r)
		}
	}
	partition := fetch.RegionPartition(regions[0])
	for _, r := range regions[1:] {
		if p := fetch.RegionPartition(r); p != partition {
			return fmt.Errorf("feed regions %s and %s are in partitions %s and %s: one watcher's role reads one partition", regions[0], r, partition, p)
		}
	}
	if b.in.Region != "" && partition != b.partition {
		return fmt.Errorf("feed regions %s are in partition %s, the task's region %s in %s: one watcher's role reads one partition", strings.Join(regions, ","), partition, b.in.Region, b.partition)
	}
	b.partitions.add(partition)
	for _, p := range f.Prefixes {
		if !prefixRE.MatchString(p) || strings.Trim(p, "/") == "" || strings.Contains(p, "//") {
			return fmt.Errorf("feed prefix %q: want the start of parameter and secret names, like /prod/ (letters, digits and _.-/+=@; no wildcard, no empty level)", p)
		}
	}
	prefixes := f.Prefixes
	if len(prefixes) == 0 {
		prefixes = []string{""} // everything
		b.note("the change feed polls whatever references its agents ask about, which no policy can know in advance: FeedParameters and FeedSecrets allow the metadata reads (ssm:GetParameters, secretsmanager:DescribeSecret) on every parameter and secret of the feed's regions (" + strings.Join(regions, ", ") + ") and the task's account — pass --feed-prefix /prod/ (repeatable) to narrow them to your paths")
	}
	b.note("a reference the feed's role cannot read (another path or account) is answered with its AccessDenied error, one in a region the feed does not serve with \"region R is not served by this feed\", and the agents that hold it poll AWS for it themselves at their own interval: if many tasks share it, add its ARN to FeedParameters or FeedSecrets, or its region to --feed-regions here and on agent watch")
	for _, r := range regions {
		for _, p := range prefixes {
			name := strings.TrimPrefix(p, "/")
			b.feedParam.add(parameterARN(partition, r, b.account, name+"*"))
			b.feedSecr.add(arn(partition, "secretsmanager", r, b.account, "secret:"+name+"*"))
		}
	}
	b.note("the change feed reads versions only and serves no value, and its role has no kms:Decrypt and no secretsmanager:GetSecretValue; but ssm:GetParameters returns the value of String and StringList parameters (SecureString ones stay encrypted), so keep secrets in SecureString parameters or Secrets Manager")
	return nil
}

// serviceARN is the ECS service ARN for a cluster and service given as names
// or ARNs. Empty parts become missing ("*" in the ARN, for a redeploy action
// that reads them from task metadata), reported as fromMetadata.
func (b *builder) serviceARN(what, cluster, service, region, missing string) (svc string, fromMetadata bool, err error) {
	if strings.HasPrefix(service, "arn:") {
		p, r, a, res, err := parseECSARN(service)
		if err != nil || !strings.HasPrefix(res, "service/") || strings.Count(res, "/") != 2 {
			return "", false, fmt.Errorf("%s: service %q is not a service ARN \"arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE\"", what, service)
		}
		b.partitions.add(p)
		return arn(p, "ecs", r, a, res), false, nil
	}
	partition, account := b.partition, b.account
	if region == "" {
		if region, err = b.taskRegion(what); err != nil {
			return "", false, err
		}
	} else if !regionRE.MatchString(region) {
		return "", false, fmt.Errorf("%s: region %q does not look like \"us-east-1\"", what, region)
	} else {
		partition = fetch.RegionPartition(region)
	}
	if strings.HasPrefix(cluster, "arn:") {
		p, r, a, res, err := parseECSARN(cluster)
		name, ok := strings.CutPrefix(res, "cluster/")
		if err != nil || !ok || name == "" || strings.Contains(name, "/") {
			return "", false, fmt.Errorf("%s: cluster %q is not a cluster ARN \"arn:aws:ecs:REGION:ACCOUNT:cluster/NAME\"", what, cluster)
		}
		partition, region, account, cluster = p, r, a, name
	}
	for _, part := range []*string{&cluster, &service} {
		if *part == "" {
			*part, fromMetadata = missing, true
		} else if strings.ContainsAny(*part, "/:*?") {
			return "", false, fmt.Errorf("%s: %q is not a cluster or service name", what, *part)
		}
	}
	b.partitions.add(partition)
	return arn(partition, "ecs", region, account, "service/"+cluster+"/"+service), fromMetadata, nil
}

func parseECSARN(s string) (partition, region, account, resource string, err error) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[2] != "ecs" || !regionRE.MatchString(f[3]) || !accountRE.MatchString(f[4]) || fetch.RegionPartition(f[3]) != f[1] {
		return "", "", "", "", fmt.Errorf("not an ECS ARN: %q", s)
	}
	return f[1], f[3], f[4], f[5], nil
}

func (b *builder) document() Document {
	doc := Document{Version: Version}
	add := func(sid string, actions []string, resources set, cond map[string]map[string][]string) {
		if len(resources) == 0 {
			return
		}
		doc.Statement = append(doc.Statement, Statement{Sid: sid, Effect: "Allow", Action: actions, Resource: resources.sorted(), Condition: cond})
	}
	add(SidReadParameters, []string{"ssm:GetParameters"}, b.params, nil)
	if b.sameSecrets() {
		add(SidReadSecrets, []string{"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"}, b.secrets, nil)
	} else {
		add(SidReadSecrets, []string{"secretsmanager:GetSecretValue"}, b.secrets, nil)
		add(SidPollSecrets, []string{"secretsmanager:DescribeSecret"}, b.describe, nil)
	}
	everything := set{"*": true}
	if len(b.viaSSM) > 0 {
		add(SidDecryptViaSSM, []string{"kms:Decrypt"}, everything, viaCondition(b.viaSSM))
	}
	if len(b.viaSM) > 0 {
		add(SidDecryptViaSecrets, []string{"kms:Decrypt"}, everything, viaCondition(b.viaSM))
	}
	if len(b.viaSSM)+len(b.viaSM) > 0 {
		b.note("kms:Decrypt is only needed for customer managed keys: parameters and secrets encrypted with the AWS managed keys (aws/ssm, aws/secretsmanager) need no grant, and the DecryptVia* statements can go. The key is not named by a reference, so Resource is * limited by kms:ViaService; put your key ARNs there if you know them")
	}
	add(SidRedeploy, []string{"ecs:DescribeServices", "ecs:UpdateService"}, b.redeploys, nil)
	add(SidRedeployLock, []string{"ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:PutParameter"}, b.locks, nil)
	add(SidWatchServices, []string{"ecs:DescribeServices", "ecs:UpdateService"}, b.watchSvcs, nil)
	if len(b.watchSvcs) > 0 {
		add(SidWatchTaskDefinitions, []string{"ecs:DescribeTaskDefinition"}, everything, nil)
		b.note("ecs:DescribeTaskDefinition supports no resource-level permissions, so WatchTaskDefinitions allows it on *")
	}
	add(SidWatchParameters, []string{"ssm:GetParameters"}, b.watchParam, nil)
	add(SidWatchSecrets, []string{"secretsmanager:DescribeSecret"}, b.watchSecr, nil)
	add(SidWatchRedeployLock, []string{"ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParametersByPath", "ssm:PutParameter"}, b.watchLocks, nil)
	add(SidFeedParameters, []string{"ssm:GetParameters"}, b.feedParam, nil)
	add(SidFeedSecrets, []string{"secretsmanager:DescribeSecret"}, b.feedSecr, nil)
	if len(b.watchLocks) > 0 {
		b.note("WatchRedeployLock lets the watcher share each service's redeploy lock with the service's own redeploy actions and other watchers (exactly one deployment per change): the lock path and the records under it, String parameters, no value of a secret")
	}
	if len(b.watchParam) > 0 {
		b.note("agent watch learns which parameters and secrets to poll from the services' task definitions at run time, so WatchParameters and WatchSecrets allow reading the metadata (ssm:GetParameters without decryption, secretsmanager:DescribeSecret: never a value, no kms:Decrypt) of every parameter and secret in the watched services' regions and account — narrow them to your paths (parameter/prod/*, secret:prod/*) if you can, and add any parameter or secret in another region or account that a task definition names")
	}
	if len(b.partitions) > 1 {
		b.note(fmt.Sprintf("the resources span partitions %s, but a role lives in one partition: split the policy, one per partition", strings.Join(b.partitions.sorted(), ", ")))
	}
	return doc
}

// sameSecrets reports whether every secret read is also polled, so one
// statement can carry both actions.
func (b *builder) sameSecrets() bool {
	if len(b.describe) != len(b.secrets) {
		return false
	}
	for s := range b.secrets {
		if !b.describe[s] {
			return false
		}
	}
	return true
}

func viaCondition(services set) map[string]map[string][]string {
	return map[string]map[string][]string{"StringEquals": {"kms:ViaService": services.sorted()}}
}

func (b *builder) sizeNote(doc Document) {
	// json.Marshal writes no white space outside strings, which is how
	// IAM counts.
	raw, err := json.Marshal(doc)
	if err != nil {
		return
	}
	n := len(raw)
	switch {
	case n > inlineRoleMaxChars:
		b.note(fmt.Sprintf("the policy is %d characters, over IAM's limits (%d for a managed policy, %d for a role's inline policies): split it, or use path wildcards (parameter/prod/*)", n, managedPolicyMaxChars, inlineRoleMaxChars))
	case n > managedPolicyMaxChars:
		b.note(fmt.Sprintf("the policy is %d characters, over the %d a managed policy may hold: attach it as an inline policy (up to %d per role), or split it", n, managedPolicyMaxChars, inlineRoleMaxChars))
	}
}
