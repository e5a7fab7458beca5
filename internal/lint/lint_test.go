package lint

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// Builders for container definitions as users write them (JSON, camelCase).
type obj = map[string]any

// agentC is an agent container running mode with args, mounting the
// "secrets" volume read-write at /run/secrets.
func agentC(name, mode string, extra obj, args ...string) obj {
	c := obj{
		"name":        name,
		"image":       "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0",
		"command":     append([]string{mode}, args...),
		"mountPoints": []obj{{"sourceVolume": "secrets", "containerPath": "/run/secrets"}},
	}
	switch mode {
	case "init", "install":
		c["essential"] = false
	case "run":
		c["essential"] = true
		c["restartPolicy"] = obj{"enabled": true, "restartAttemptPeriod": 60}
		c["healthCheck"] = obj{"command": []string{"CMD", "/agent", "health"}, "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 60}
	}
	maps.Copy(c, extra)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

// appC is an app reading the "secrets" volume and waiting for dependsOn
// agent with condition (none when agent is "").
func appC(name, agent, condition string, extra obj) obj {
	c := obj{
		"name":        name,
		"image":       "111122223333.dkr.ecr.us-east-1.amazonaws.com/web:2.4.1",
		"essential":   true,
		"mountPoints": []obj{{"sourceVolume": "secrets", "containerPath": "/run/secrets", "readOnly": true}},
	}
	if agent != "" {
		c["dependsOn"] = []obj{{"containerName": agent, "condition": condition}}
	}
	maps.Copy(c, extra)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

func env(kv ...string) []obj {
	var out []obj
	for i := 0; i < len(kv); i += 2 {
		out = append(out, obj{"name": kv[i], "value": kv[i+1]})
	}
	return out
}

func agentConfig(t *testing.T, cfg obj) []obj {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return env("AGENT_CONFIG", string(b))
}

// fargate is a register-task-definition input for Fargate.
func fargate(task obj, containers ...obj) obj {
	td := obj{
		"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": []string{"FARGATE"},
		"cpu": "256", "memory": "512",
		"taskRoleArn":          "arn:aws:iam::111122223333:role/web-task",
		"executionRoleArn":     "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
		"containerDefinitions": containers,
		"volumes":              []obj{{"name": "secrets"}},
	}
	maps.Copy(td, task)
	return td
}

// ec2 is a register-task-definition input for EC2 with a tmpfs volume.
func ec2(task obj, containers ...obj) obj {
	td := obj{
		"family": "web", "networkMode": "bridge", "requiresCompatibilities": []string{"EC2"},
		"containerDefinitions": containers,
		"volumes": []obj{{"name": "secrets", "dockerVolumeConfiguration": obj{
			"scope": "task", "driver": "local", "driverOpts": obj{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}}},
	}
	maps.Copy(td, task)
	return td
}

// describe wraps a register input as describe-task-definition prints it.
func describe(td obj) any {
	inner := maps.Clone(td)
	maps.Copy(inner, obj{
		"taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7",
		"revision":          7, "status": "ACTIVE",
		"requiresAttributes": []obj{{"name": "com.amazonaws.ecs.capability.task-iam-role"}},
		"compatibilities":    []string{"EC2", "FARGATE"},
		"registeredAt":       "2026-11-02T10:04:05.123000+00:00",
		"registeredBy":       "arn:aws:sts::111122223333:assumed-role/deploy/ci",
	})
	return obj{"taskDefinition": inner, "tags": []obj{{"key": "team", "value": "web"}}}
}

// containers is the bare container-definitions array of td.
func containers(td obj) any { return td["containerDefinitions"] }

func lintJSON(t *testing.T, doc any) []Finding {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	td, err := taskdef.Parse(b)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return Check("td.json", td)
}

// brief is "RULE container path" for each finding.
func brief(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.RuleID+" "+f.Container+" "+f.Path)
	}
	return out
}

func TestRulesFireAndStayQuiet(t *testing.T) {
	sidecarCfg := obj{
		"secrets":  []obj{{"name": "TLS_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/tls-AbCdEf:key::"}},
		"onChange": []obj{{"signal": obj{"process": "nginx", "signal": "SIGHUP"}}},
	}
	initArgs := []string{"--secret", "DB_PASSWORD=/prod/db/password"}
	cases := []struct {
		name string
		doc  func(t *testing.T) any
		want []string
	}{
		{"fargate init register clean", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", obj{
				"environment": env("DB_PASSWORD_FILE", "/run/secrets/DB_PASSWORD", "TOKEN_TTL", "300", "SECRET_ROTATION", "enabled",
					"TOKEN_URL", "https://auth.example.com/oauth/token", "IMAGE_TAG", "v1.2.3-build.456", "SERVICE", "MyApplicationServiceName2024",
					"GIT_COMMIT", "9f2c4e1a7b3d5f60812a4c6e8b0d2f4a6c8e0b1d"),
				"secrets": []obj{
					{"name": "API_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:key::"},
					{"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"},
					{"name": "REMOTE", "valueFrom": "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/remote"},
				},
				"logConfiguration": obj{"logDriver": "splunk", "options": obj{"splunk-url": "https://splunk.example.com"},
					"secretOptions": []obj{{"name": "splunk-token", "valueFrom": "/prod/splunk/token"}}},
			}))
		}, nil},
		{"ec2 sidecar describe clean", func(t *testing.T) any {
			return describe(ec2(obj{"pidMode": "task"},
				agentC("secrets", "run", obj{"environment": agentConfig(t, sidecarCfg), "readonlyRootFilesystem": true}),
				appC("app", "secrets", "HEALTHY", nil)))
		}, nil},
		{"container array clean", func(t *testing.T) any {
			return containers(fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", nil)))
		}, nil},
		{"exec pattern clean", func(t *testing.T) any {
			return fargate(obj{"volumes": []obj{{"name": "agent-bin"}}},
				agentC("install-agent", "install", obj{"readonlyRootFilesystem": true,
					"mountPoints": []obj{{"sourceVolume": "agent-bin", "containerPath": "/shared"}}}, "/shared"),
				appC("app", "install-agent", "SUCCESS", obj{
					"entryPoint":  []string{"/shared/agent", "exec", "--"},
					"command":     []string{"/app/server"},
					"environment": agentConfig(t, obj{"secrets": []obj{{"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"}}, "onChange": []obj{{"restart": obj{}}}}),
					"mountPoints": []obj{{"sourceVolume": "agent-bin", "containerPath": "/shared", "readOnly": true}},
				}))
		}, nil},

		{"plaintext secret names", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", obj{
				"environment": env("DB_PASSWORD", "correct horse battery", "Stripe_Api_Key", "k1", "GITHUB_TOKEN", "abc", "JWT_PRIVATE_KEY", "x", "CLIENT_SECRET", "hunter2hunter2"),
			}))
		}, []string{
			"ESA101 app containerDefinitions[1].environment[0]",
			"ESA101 app containerDefinitions[1].environment[1]",
			"ESA101 app containerDefinitions[1].environment[2]",
			"ESA101 app containerDefinitions[1].environment[3]",
			"ESA101 app containerDefinitions[1].environment[4]",
		}},
		{"credential values", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", obj{
				"environment": env(
					"AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE",
					"TLS", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
					"DATABASE_URL", "postgres://app:s3cr3t@db.internal:5432/app",
					"GH", "ghp_0123456789abcdefghijABCDEFGHIJ012345",
					"SLACK", "xoxb-1234567890-abcdefghij",
					"STRIPE", "sk_live_0123456789abcdefABCD",
					"DB_PASSWORD", "mysql://root:pw@db/app",
				),
			}))
		}, []string{
			"ESA102 app containerDefinitions[1].environment[0]",
			"ESA102 app containerDefinitions[1].environment[1]",
			"ESA102 app containerDefinitions[1].environment[2]",
			"ESA102 app containerDefinitions[1].environment[3]",
			"ESA102 app containerDefinitions[1].environment[4]",
			"ESA102 app containerDefinitions[1].environment[5]",
			"ESA102 app containerDefinitions[1].environment[6]",
		}},
		{"credential in agent config, entropy", func(t *testing.T) any {
			cfg := obj{"secrets": []obj{{"name": "A", "valueFrom": "/a"}},
				"templates": []obj{{"template": "token=ghp_0123456789abcdefghijABCDEFGHIJ012345", "destination": "t"}}}
			return fargate(nil, agentC("secrets", "init", obj{"environment": agentConfig(t, cfg)}), appC("app", "secrets", "SUCCESS", obj{
				"environment": env("SIGNING", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SESSION", "q8Xz3LmP0vR7tY2wK9nB4cJ6"),
			}))
		}, []string{
			"ESA102 secrets containerDefinitions[0].environment[0]",
			"ESA103 app containerDefinitions[1].environment[0]",
			"ESA103 app containerDefinitions[1].environment[1]",
		}},
		{"valueFrom ECS rejects", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", obj{
				"secrets": []obj{
					{"name": "A", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf:username"},
					{"name": "B", "valueFrom": "/prod/db/password:3"},
					{"name": "C", "valueFrom": "/prod/ok"},
					{"name": "D", "valueFrom": ""},
				},
				"logConfiguration": obj{"logDriver": "splunk", "secretOptions": []obj{{"name": "splunk-token", "valueFrom": "prod//token"}}},
			}))
		}, []string{
			"ESA201 app containerDefinitions[1].logConfiguration.secretOptions[0]",
			"ESA201 app containerDefinitions[1].secrets[0]",
			"ESA201 app containerDefinitions[1].secrets[1]",
			"ESA201 app containerDefinitions[1].secrets[3]",
		}},
		{"agent config invalid", func(t *testing.T) any {
			return fargate(nil,
				agentC("secrets", "init", obj{"environment": env("AGENT_CONFIG", `{"secrets":[],"outputdir":"/x"}`)}),
				agentC("more", "init", obj{"mountPoints": []obj{}}, "--secret", "NOEQUALS", "--secret=B=arn:aws:ssm:mars-1:1:parameter/x"),
				appC("app", "secrets", "SUCCESS", nil))
		}, []string{
			"ESA202 secrets containerDefinitions[0].environment[0]",
			"ESA202 more containerDefinitions[1].command",
			"ESA202 more containerDefinitions[1].command",
		}},
		{"tmpfs fed by init only", func(t *testing.T) any {
			return describe(ec2(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", nil)))
		}, []string{"ESA301 secrets containerDefinitions[0].mountPoints"}},
		{"tmpfs in a container array is unknown", func(t *testing.T) any {
			return containers(ec2(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", nil)))
		}, nil},
		{"signal without pidMode task", func(t *testing.T) any {
			return ec2(nil, agentC("secrets", "run", obj{"environment": agentConfig(t, sidecarCfg)}), appC("app", "secrets", "HEALTHY", nil))
		}, []string{"ESA302 secrets containerDefinitions[0].environment[0]"}},
		{"app without dependsOn", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "", "", nil),
				appC("other", "", "", obj{"mountPoints": []obj{}}))
		}, []string{"ESA303 app containerDefinitions[1]"}},
		{"wrong conditions", func(t *testing.T) any {
			return fargate(obj{"volumes": []obj{{"name": "secrets"}, {"name": "cache"}}},
				agentC("secrets", "init", nil, initArgs...),
				agentC("refresh", "run", obj{"mountPoints": []obj{{"sourceVolume": "cache", "containerPath": "/run/secrets"}}}),
				appC("app", "secrets", "COMPLETE", nil),
				appC("worker", "refresh", "START", obj{"mountPoints": []obj{{"sourceVolume": "cache", "containerPath": "/c"}}}),
				appC("cron", "refresh", "SUCCESS", obj{"mountPoints": []obj{{"sourceVolume": "cache", "containerPath": "/c"}}}))
		}, []string{
			"ESA304 app containerDefinitions[2].dependsOn[0]",
			"ESA304 worker containerDefinitions[3].dependsOn[0]",
			"ESA304 cron containerDefinitions[4].dependsOn[0]",
		}},
		{"configuration lint cannot read", func(t *testing.T) any {
			return fargate(nil,
				agentC("secrets", "run", obj{"readonlyRootFilesystem": true,
					"mountPoints": []obj{{"sourceVolume": "secrets", "containerPath": "/data"}}}, "--config", "/etc/agent/config.json"),
				agentC("injected", "init", obj{"readonlyRootFilesystem": true, "mountPoints": []obj{},
					"secrets": []obj{{"name": "AGENT_CONFIG", "valueFrom": "/prod/agent/config"}}}),
				appC("app", "", "", nil))
		}, []string{"ESA303 app containerDefinitions[2]"}},
		{"agent image without a command is no app", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "init", nil, initArgs...), appC("app", "secrets", "SUCCESS", nil),
				agentC("help", "init", obj{"command": nil, "essential": true}))
		}, nil},
		{"sidecar not essential", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "run", obj{"essential": false}), appC("app", "secrets", "HEALTHY", nil))
		}, []string{"ESA305 secrets containerDefinitions[0].essential"}},
		{"sidecar ECS would not restart", func(t *testing.T) any {
			return fargate(nil,
				agentC("secrets", "run", obj{"restartPolicy": nil}),
				agentC("disabled", "run", obj{"restartPolicy": obj{"enabled": false}, "mountPoints": []obj{}}),
				agentC("optional", "run", obj{"restartPolicy": nil, "essential": false, "mountPoints": []obj{}}),
				appC("app", "secrets", "HEALTHY", nil))
		}, []string{
			"ESA309 secrets containerDefinitions[0]",
			"ESA309 disabled containerDefinitions[1].restartPolicy.enabled",
			"ESA305 optional containerDefinitions[2].essential",
		}},
		{"init essential", func(t *testing.T) any {
			return fargate(obj{"volumes": []obj{{"name": "secrets"}, {"name": "agent-bin"}}},
				agentC("secrets", "init", obj{"essential": nil}, initArgs...),
				agentC("install-agent", "install", obj{"essential": true, "mountPoints": []obj{{"sourceVolume": "agent-bin", "containerPath": "/shared"}}}, "/shared"),
				appC("app", "secrets", "SUCCESS", nil))
		}, []string{
			"ESA306 secrets containerDefinitions[0]",
			"ESA306 install-agent containerDefinitions[1].essential",
		}},
		{"HEALTHY without healthCheck", func(t *testing.T) any {
			return fargate(nil, agentC("secrets", "run", obj{"healthCheck": nil}), appC("app", "secrets", "HEALTHY", nil))
		}, []string{"ESA307 secrets containerDefinitions[0]"}},
		{"read-only root without output volume", func(t *testing.T) any {
			return fargate(obj{"volumes": []obj{{"name": "secrets"}, {"name": "out"}}},
				agentC("secrets", "init", obj{"readonlyRootFilesystem": true, "mountPoints": []obj{}}, initArgs...),
				agentC("ok-tmpfs", "init", obj{"readonlyRootFilesystem": true, "mountPoints": []obj{},
					"linuxParameters": obj{"tmpfs": []obj{{"containerPath": "/run/secrets", "size": 1}}}}, initArgs...),
				agentC("ok-flag", "init", obj{"readonlyRootFilesystem": true,
					"mountPoints": []obj{{"sourceVolume": "out", "containerPath": "/out"}}}, "--output-dir", "/out/app", "--secret", "A=/a"),
				agentC("bad-config", "run", obj{"readonlyRootFilesystem": true,
					"environment": agentConfig(t, obj{"secrets": []obj{{"name": "A", "valueFrom": "/a"}}, "outputDir": "/srv/secrets"})}),
				appC("app", "ok-flag", "SUCCESS", obj{"mountPoints": []obj{{"sourceVolume": "out", "containerPath": "/out", "readOnly": true}}}))
		}, []string{
			"ESA308 secrets containerDefinitions[0].readonlyRootFilesystem",
			"ESA308 bad-config containerDefinitions[3].readonlyRootFilesystem",
		}},
	}
	fired := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := brief(lintJSON(t, tc.doc(t)))
			for _, g := range got {
				fired[strings.Fields(g)[0]] = true
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// A new rule needs a case above that makes it fire.
	for _, r := range Rules() {
		if !fired[r.ID] {
			t.Errorf("no case makes %s %s fire", r.ID, r.Name)
		}
	}
}

// TestRuleIDsAreStable: ids and names are what CI configurations and
// suppressions refer to.
func TestRuleIDsAreStable(t *testing.T) {
	ids, names := map[string]bool{}, map[string]bool{}
	for _, r := range Rules() {
		if ids[r.ID] || names[r.Name] {
			t.Errorf("rule %s %s is not unique", r.ID, r.Name)
		}
		ids[r.ID], names[r.Name] = true, true
		if r.Fix == "" || r.Summary == "" || r.check == nil {
			t.Errorf("rule %s is incomplete", r.ID)
		}
	}
	var got []string
	for _, r := range Rules() {
		got = append(got, fmt.Sprintf("%s %s %s", r.ID, r.Name, r.Severity))
	}
	want := []string{
		"ESA101 plaintext-secret-name error",
		"ESA102 plaintext-credential error",
		"ESA103 high-entropy-value warning",
		"ESA201 invalid-valuefrom error",
		"ESA202 invalid-agent-config error",
		"ESA301 tmpfs-init-only error",
		"ESA302 signal-without-pid-mode error",
		"ESA303 app-missing-depends-on error",
		"ESA304 app-depends-on-condition error",
		"ESA305 sidecar-not-essential warning",
		"ESA306 init-essential error",
		"ESA307 health-check-missing error",
		"ESA308 read-only-root-without-output-volume error",
		"ESA309 sidecar-without-restart-policy warning",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
