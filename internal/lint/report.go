package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
)

// Summary counts findings by severity.
type Summary struct {
	Files    int `json:"files"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Notes    int `json:"notes"`
}

// Summarize counts fs over files files.
func Summarize(files int, fs []Finding) Summary {
	s := Summary{Files: files}
	for _, f := range fs {
		switch f.Severity {
		case Error:
			s.Errors++
		case Warning:
			s.Warnings++
		case Note:
			s.Notes++
		}
	}
	return s
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// WriteText writes one block per finding and a summary line.
func WriteText(w io.Writer, files int, fs []Finding) error {
	var b strings.Builder
	for _, f := range fs {
		loc := f.File
		if f.Line > 0 {
			loc += fmt.Sprintf(":%d", f.Line)
		}
		fmt.Fprintf(&b, "%s: %s: %s %s %s: %s\n", loc, f.Container, f.Level, f.RuleID, f.RuleName, f.Message)
		fmt.Fprintf(&b, "    at %s\n    fix: %s\n", f.Path, f.Fix)
	}
	s := Summarize(files, fs)
	if len(fs) == 0 {
		fmt.Fprintf(&b, "no findings in %s\n", plural(files, "file"))
	} else {
		fmt.Fprintf(&b, "%s (%s, %s, %s) in %s\n", plural(len(fs), "finding"),
			plural(s.Errors, "error"), plural(s.Warnings, "warning"), plural(s.Notes, "note"), plural(files, "file"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes {"findings": […], "summary": {…}}.
func WriteJSON(w io.Writer, files int, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Findings []Finding `json:"findings"`
		Summary  Summary   `json:"summary"`
	}{fs, Summarize(files, fs)})
}

// SARIF 2.1.0, only the parts we fill.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name    string      `json:"name"`
		Version string      `json:"version,omitempty"`
		Rules   []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string        `json:"id"`
		Name                 string        `json:"name"`
		ShortDescription     sarifText     `json:"shortDescription"`
		Help                 sarifText     `json:"help"`
		DefaultConfiguration sarifRuleConf `json:"defaultConfiguration"`
	}
	sarifRuleConf struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical  `json:"physicalLocation"`
		LogicalLocations []sarifLogical `json:"logicalLocations"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogical struct {
		Name               string `json:"name"`
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// WriteSARIF writes a SARIF 2.1.0 log with every rule and one result per
// finding; toolVersion may be "".
func WriteSARIF(w io.Writer, toolVersion string, fs []Finding) error {
	rules := Rules()
	index := map[string]int{}
	driver := sarifDriver{
		Name:    "ecs-secrets-agent lint",
		Version: toolVersion,
	}
	for i, r := range rules {
		index[r.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: r.ID, Name: r.Name,
			ShortDescription:     sarifText{r.Summary},
			Help:                 sarifText{"Fix: " + r.Fix},
			DefaultConfiguration: sarifRuleConf{r.Severity.String()},
		})
	}
	results := []sarifResult{}
	for _, f := range fs {
		loc := sarifLocation{
			PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(f.File)}},
			LogicalLocations: []sarifLogical{{Name: f.Container, FullyQualifiedName: f.Path, Kind: "object"}},
		}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		results = append(results, sarifResult{
			RuleID: f.RuleID, RuleIndex: index[f.RuleID], Level: f.Level,
			Message:   sarifText{f.Message + ". Fix: " + f.Fix},
			Locations: []sarifLocation{loc},
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	})
}

// fileURI is a relative URI reference for a file name, escaped.
func fileURI(file string) string {
	return (&url.URL{Path: filepath.ToSlash(file)}).String()
}
