package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/policy"
)

// runPolicy prints the least-privilege IAM policy for the configuration, the
// watched services and the change feed (or, with --trust, the role's trust
// policy); notes on every wildcard go to stderr.
func runPolicy(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent policy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags config.Flags
	var commands, services, feedPrefixes []string
	fs.StringVar(&flags.ConfigPath, "config", "", "JSON config `FILE` (or AGENT_CONFIG)")
	fs.Var(repeated{&flags.Secrets}, "secret", "a secret as `NAME=VALUEFROM` (repeatable)")
	region := fs.String("region", getenv("AWS_REGION"), "the task's `REGION`, for Parameter Store names (default $AWS_REGION)")
	account := fs.String("account", "", "the task's AWS account `ID` (default: * in ARNs, with a note)")
	fs.Var(repeated{&commands}, "command", "agent `COMMAND` this role runs: init, run, exec or watch (repeatable; default run)")
	cluster := fs.String("cluster", "", "for agent watch: the `CLUSTER` of the --service values")
	fs.Var(repeated{&services}, "service", "for agent watch: a `SERVICE` it watches (repeatable)")
	feed := fs.Bool("feed", false, "the role serves the change feed (agent watch --feed-addr): metadata reads of every parameter and secret of its regions (--feed-regions, default --region), never a value")
	feedRegions := fs.String("feed-regions", "", "with --feed: the `REGIONS` (comma-separated) the feed serves, as given to agent watch --feed-regions (default --region; implies --feed)")
	fs.Var(repeated{&feedPrefixes}, "feed-prefix", "with --feed: only the parameters and secrets whose names start with `PREFIX` (/prod/ → parameter/prod/*, secret:prod/*; repeatable; implies --feed)")
	trust := fs.Bool("trust", false, "print the trust policy for ecs-tasks.amazonaws.com instead")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "policy: unexpected argument %q", fs.Arg(0))
	}
	in := policy.Input{Region: *region, Account: *account, Commands: commands}
	var regions []string
	if *feedRegions != "" {
		var err error
		if regions, err = config.ParseFeedRegions(*feedRegions); err != nil {
			return usageErr(stderr, "policy: %v", err)
		}
	}
	if len(feedPrefixes) > 0 || len(regions) > 0 {
		*feed = true
	}
	if *feed {
		in.Feed = &policy.Feed{Prefixes: feedPrefixes, Regions: regions}
	}
	if flags.ConfigPath != "" || len(flags.Secrets) > 0 || getenv("AGENT_CONFIG") != "" || len(services) == 0 && !*feed {
		s, err := config.Load(flags, getenv)
		if err != nil && !*trust {
			return usageErr(stderr, "policy: %v", err)
		}
		in.Settings = s
	}
	for _, svc := range services {
		in.Watch = append(in.Watch, policy.Service{Cluster: *cluster, Service: svc, Region: *region})
	}
	build := policy.Build
	if *trust {
		build = policy.Trust
	}
	doc, notes, err := build(in)
	if err != nil {
		return usageErr(stderr, "policy: %v", err)
	}
	out, err := doc.JSON()
	if err != nil {
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	_, err = stdout.Write(out)
	return err
}
