package report_test

import (
	"os"

	"github.com/visrec/visrec/eval/report"
)

func ExampleTable_WriteMarkdown() {
	t := report.Table{
		Title:   "Temporal split",
		Command: report.Command("visrec", "eval", "--split", "temporal"),
		Columns: []string{"model", "recall@10"},
	}
	t.AddRow("bpr", 0.1234567)
	t.AddRow("popularity", 0.05)
	if err := t.WriteMarkdown(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// **Temporal split**
	//
	// | model      | recall@10 |
	// | ---------- | --------: |
	// | bpr        |    0.1235 |
	// | popularity |    0.0500 |
	//
	// Command: `visrec eval --split temporal`
}
