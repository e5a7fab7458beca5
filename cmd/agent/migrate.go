package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/migrate"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/policy"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// jsonArray is a flag that takes a JSON array of strings; nil until set.
type jsonArray struct{ v *[]string }

func (j jsonArray) String() string { return "" }
func (j jsonArray) Set(s string) error {
	out := []string{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return errors.New(`want a JSON array of strings, such as '["/app/server", "--port", "8080"]'`)
	}
	*j.v = out
	return nil
}

// runMigrate prints the task definition in FILE (or stdin) rewritten for
// the agent; notes go to stderr. Exit 2 for input it cannot rewrite, 1 when
// moving plaintext to Parameter Store fails.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt migrate.Options
	fs.StringVar(&opt.Pattern, "pattern", "", "the pattern: init, sidecar, exec or watch")
	fs.StringVar(&opt.Image, "image", "", "the agent `IMAGE` (REGISTRY/ecs-secrets-agent:VERSION); required")
	fs.Var(jsonArray{&opt.EntryPoint}, "entrypoint", "exec: the app image's ENTRYPOINT as a `JSON-ARRAY`, when the task definition does not set it")
	fs.Var(jsonArray{&opt.Command}, "command", "exec: the app's command as a `JSON-ARRAY`, when the task definition does not set it")
	fs.StringVar(&opt.Cluster, "cluster", "", "watch: the `CLUSTER` of the services")
	fs.Var(repeated{&opt.Services}, "service", "watch: a `SERVICE` to redeploy on rotation (repeatable)")
	policyOut := fs.String("policy-out", "", "write the task role's IAM policy for the result to `FILE`")
	prefix := fs.String("move-plaintext", "", "write plaintext secrets lint finds in environment to Parameter Store under `PREFIX`/NAME (SecureString) and reference them")
	kmsKey := fs.String("kms-key", "", "with --move-plaintext: the KMS `KEY` for the SecureStrings (default: the account's aws/ssm key)")
	region := fs.String("region", getenv("AWS_REGION"), "the `REGION` of the parameters and of the policy (default $AWS_REGION)")
	dryRun := fs.Bool("dry-run", false, "with --move-plaintext: print what would be written (names only) and write nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agent migrate --pattern init|sidecar|exec|watch --image IMAGE [flags] FILE (- for stdin)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: exitUsage, msg: "migrate: want one FILE"}
	}
	if err := opt.Validate(); err != nil {
		return usageErr(stderr, "migrate: %v", err)
	}
	if *prefix == "" && (*kmsKey != "" || *dryRun) {
		return usageErr(stderr, "migrate: --kms-key and --dry-run go with --move-plaintext")
	}
	if *prefix != "" && opt.Pattern == migrate.Watch {
		return usageErr(stderr, "migrate: --move-plaintext changes the task definition, and --pattern watch prints the watcher's instead: move them with init, sidecar or exec, or with aws ssm put-parameter first")
	}
	name, data, err := readInput(fs.Arg(0), stdin)
	if err != nil {
		return usageErr(stderr, "migrate: %s: %v", name, err)
	}
	td, err := taskdef.Parse(data)
	if err != nil {
		return usageErr(stderr, "migrate: %s: %v", name, err)
	}

	var moves []migrate.Move
	var plainNotes []string
	if *prefix == "" && opt.Pattern != migrate.Watch {
		for _, f := range lint.Check(name, td) {
			if strings.HasPrefix(f.RuleID, "ESA10") {
				plainNotes = append(plainNotes, fmt.Sprintf("container %q %s: %s stays in plaintext; --move-plaintext PREFIX moves it to Parameter Store", f.Container, f.Path, f.RuleID))
			}
		}
	}
	if *prefix != "" {
		if moves, err = migrate.FindPlaintext(td, *prefix); err != nil {
			return usageErr(stderr, "migrate: %s: %v", name, err)
		}
	}
	res, err := migrate.Migrate(td, opt)
	if err != nil {
		return usageErr(stderr, "migrate: %s: %v", name, err)
	}
	out, err := migrate.Marshal(res.TaskDef)
	if err != nil {
		return err
	}
	var doc []byte
	if *policyOut != "" {
		if doc, err = migratePolicy(res, opt, *region, stderr); err != nil {
			return usageErr(stderr, "migrate: --policy-out: %v", err)
		}
	}

	for _, m := range moves {
		verb := "moving"
		if *dryRun {
			verb = "would move"
		}
		fmt.Fprintf(stderr, "%s: container %q environment %s (%s) → SecureString parameter %s\n", verb, m.Container, m.Env, m.Rule, m.Parameter)
	}
	if len(moves) > 0 && !*dryRun {
		client, err := ssmClient(ctx, *region)
		if err != nil {
			fmt.Fprintf(stderr, "agent migrate: %v\n", err)
			return &exitError{code: exitFailed, msg: err.Error()}
		}
		created, err := migrate.Store(ctx, client, moves, *kmsKey)
		for _, p := range created {
			fmt.Fprintf(stderr, "created parameter %s\n", p)
		}
		if err != nil {
			fmt.Fprintf(stderr, "agent migrate: %v\n", err)
			return &exitError{code: exitFailed, msg: err.Error()}
		}
		fmt.Fprintln(stderr, "note: rotate the moved values: whoever could describe the old task definition has seen them")
	}
	if *dryRun {
		// Nothing was written, so the task definition is not printed: it
		// would reference parameters that do not exist.
		fmt.Fprintf(stderr, "dry run: %d parameter(s) not written; no task definition printed\n", len(moves))
		return nil
	}
	if doc != nil {
		if err := os.WriteFile(*policyOut, doc, 0o644); err != nil {
			return &exitError{code: exitFailed, msg: err.Error()}
		}
	}
	for _, n := range append(res.Notes, plainNotes...) {
		fmt.Fprintln(stderr, "note:", n)
	}
	_, err = stdout.Write(out)
	return err
}

// migratePolicy is `agent policy`'s document for the result; its notes go
// to stderr.
func migratePolicy(res *migrate.Result, opt migrate.Options, region string, stderr io.Writer) ([]byte, error) {
	in := policy.Input{Region: region, Commands: []string{res.Command}}
	if res.Command == "watch" {
		for _, s := range opt.Services {
			in.Watch = append(in.Watch, policy.Service{Cluster: opt.Cluster, Service: s, Region: region})
		}
	} else {
		if len(res.Secrets) == 0 {
			return nil, errors.New("the task definition already uses the agent: run agent policy with its configuration instead")
		}
		flags := config.Flags{}
		for _, s := range res.Secrets {
			flags.Secrets = append(flags.Secrets, s.Name+"="+s.ValueFrom)
		}
		s, err := config.Load(flags, func(string) string { return "" })
		if err != nil {
			return nil, err
		}
		in.Settings = s
	}
	doc, notes, err := policy.Build(in)
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	return doc.JSON()
}

// ssmClient uses the operator's credentials: the SDK's default chain.
func ssmClient(ctx context.Context, region string) (*ssm.Client, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS credentials: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: give --region or set AWS_REGION")
	}
	return ssm.NewFromConfig(cfg), nil
}
