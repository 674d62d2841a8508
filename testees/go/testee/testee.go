// Package testee speaks conformance/PROTOCOL.md for a Go Que port: the JSON-lines loop,
// the shared job classes and the ops that are the same for every library. A port plugs
// in through Library; cmd/que-go and cmd/gue are the two built here.
//
// Arguments are handled the way Go users of these libraries handle them: enqueue parses
// the request's JSON text with encoding/json into native Go values and marshals them back
// into the job's Args bytes; the echo job decodes Args with json.Unmarshal into
// interface{}.
package testee

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx"
)

// ProtocolVersion is the testee protocol this program speaks.
const ProtocolVersion = 2

// PoolSize is the connections a testee's pgx pool may open. A que-go or gue worker holds
// one connection for a job's whole life (its advisory lock lives on it), so a pool of N
// workers needs N connections and one for the rest: this covers the 128-worker pools of
// `make bench` (bench/memory.py). pgx opens them only when asked.
const PoolSize = 140

// Request is one protocol request; fields an op does not use stay zero.
type Request struct {
	ID           json.RawMessage `json:"id"`
	Op           string          `json:"op"`
	DatabaseURL  string          `json:"database_url"`
	ResultsTable string          `json:"results_table"`
	JobClass     string          `json:"job_class"`
	ArgsJSON     *string         `json:"args_json"`
	Queue        string          `json:"queue"`
	Priority     *int            `json:"priority"`
	RunAt        *string         `json:"run_at"`
	Workers      int             `json:"workers"`
	DeadlineMS   int             `json:"deadline_ms"`
	MinDuration  int             `json:"min_duration_ms"`
	WakeMS       *int            `json:"wake_interval_ms"`
	JobID        int64           `json:"job_id"`
	Version      int             `json:"version"`
	Count        int             `json:"count"`
}

// Job is what a handler needs of a job, whatever the library.
type Job struct {
	ID         int64
	Type       string
	Args       []byte
	ErrorCount int32
}

// NewJob is a job to enqueue: Args already marshaled, zero values meaning "the default".
type NewJob struct {
	Type     string
	Args     []byte
	Queue    string
	Priority int16
	RunAt    time.Time
}

// Held is a job locked across requests, as the lock op reports it.
type Held struct {
	ID         int64
	Queue      string
	Priority   int16
	RunAt      time.Time
	Type       string
	ErrorCount int32
}

// Handler works one job; an error fails it.
type Handler func(Job) error

// Library is one Go Que port under test.
type Library interface {
	// Start connects (the pool is shared with the testee for its own SQL) and registers
	// the handlers under their job classes.
	Start(url string, handlers map[string]Handler) (*pgx.ConnPool, error)
	Name() string
	Version() string
	Capabilities() map[string]interface{}
	Enqueue(job NewJob) (*int64, error)
	WorkOne(queue string) bool
	// StartPool starts the library's worker pool; the returned function shuts it down
	// gracefully and returns when its workers have stopped.
	StartPool(queue string, workers int, interval time.Duration) func()
	Lock(queue string) (*Held, error)
	Release(jobID int64) error
	ReleaseAll()
}

// Main runs the protocol loop over lib until stop or end of input.
func Main(lib Library) {
	t := &testee{lib: lib}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for in.Scan() {
		line := in.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var req Request
		response := map[string]interface{}{}
		if err := json.Unmarshal(line, &req); err != nil {
			response["id"] = nil
			response["ok"] = false
			response["error"] = map[string]string{"type": "BadRequest", "message": err.Error()}
		} else {
			response["id"] = req.ID
			result, err := t.safeDispatch(req)
			if err != nil {
				response["ok"] = false
				response["error"] = map[string]string{"type": "Error", "message": err.Error()}
			} else {
				response["ok"] = true
				response["result"] = result
			}
		}
		if err := out.Encode(response); err != nil {
			os.Exit(1)
		}
		if req.Op == "stop" {
			return
		}
	}
}

type testee struct {
	lib          Library
	pool         *pgx.ConnPool
	resultsTable string
}

func (t *testee) safeDispatch(req Request) (result interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return t.dispatch(req)
}

func (t *testee) dispatch(req Request) (interface{}, error) {
	switch req.Op {
	case "start":
		return t.start(req)
	case "enqueue":
		return t.enqueue(req)
	case "work_one":
		return map[string]interface{}{"worked": t.lib.WorkOne(req.Queue)}, nil
	case "bench_enqueue":
		return t.benchEnqueue(req)
	case "work":
		return t.work(req)
	case "lock":
		return t.lock(req)
	case "release":
		return map[string]interface{}{}, t.lib.Release(req.JobID)
	case "stop":
		t.lib.ReleaseAll()
		if t.pool != nil {
			t.pool.Close()
		}
		return map[string]interface{}{}, nil
	case "migrate":
		return nil, errors.New(t.lib.Name() + " ships no migrations (schema.sql only)")
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

// ModuleVersion is the version of a dependency compiled into this binary.
func ModuleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			return dep.Version
		}
	}
	return "unknown"
}

func goVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "Go"
	}
	return "Go " + strings.TrimPrefix(info.GoVersion, "go")
}

func (t *testee) start(req Request) (interface{}, error) {
	t.resultsTable = req.ResultsTable
	handlers := map[string]Handler{
		"QueConformance::Echo":  t.echo,
		"QueConformance::Fail":  t.fail,
		"QueConformance::Sleep": t.sleep,
		"QueConformance::Noop":  func(Job) error { return nil },
		"QueConformance::Flaky": t.flaky,
	}
	pool, err := t.lib.Start(req.DatabaseURL, handlers)
	if err != nil {
		return nil, err
	}
	t.pool = pool
	return map[string]interface{}{
		"name":         t.lib.Name(),
		"version":      t.lib.Version(),
		"language":     goVersion(),
		"protocol":     ProtocolVersion,
		"capabilities": t.lib.Capabilities(),
	}, nil
}

func (t *testee) enqueue(req Request) (interface{}, error) {
	job := NewJob{Type: req.JobClass, Queue: req.Queue}
	if req.ArgsJSON != nil {
		var value interface{}
		if err := json.Unmarshal([]byte(*req.ArgsJSON), &value); err != nil {
			return nil, err
		}
		args, err := json.Marshal(value)
		if err != nil {
			return nil, err
		}
		job.Args = args
	}
	if req.Priority != nil {
		job.Priority = int16(*req.Priority)
	}
	if req.RunAt != nil {
		at, err := time.Parse(time.RFC3339Nano, *req.RunAt)
		if err != nil {
			return nil, err
		}
		job.RunAt = at
	}
	id, err := t.lib.Enqueue(job)
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{"job_id": id}, nil
}

func (t *testee) benchEnqueue(req Request) (interface{}, error) {
	started := time.Now()
	for i := 0; i < req.Count; i++ {
		args, err := json.Marshal([]interface{}{i})
		if err != nil {
			return nil, err
		}
		if _, err := t.lib.Enqueue(NewJob{Type: req.JobClass, Args: args}); err != nil {
			return nil, err
		}
	}
	return map[string]interface{}{"elapsed_ms": float64(time.Since(started).Microseconds()) / 1000}, nil
}

func (t *testee) drained(queue string) (bool, error) {
	var drained bool
	err := t.pool.QueryRow("SELECT NOT EXISTS (SELECT 1 FROM que_jobs WHERE queue = $1 AND run_at <= now())", queue).Scan(&drained)
	return drained, err
}

func (t *testee) work(req Request) (interface{}, error) {
	workers := req.Workers
	if workers < 1 {
		workers = 1
	}
	interval := 10 * time.Millisecond
	if req.WakeMS != nil {
		interval = time.Duration(*req.WakeMS) * time.Millisecond
	}
	started := time.Now()
	deadline := started.Add(time.Duration(req.DeadlineMS) * time.Millisecond)
	minimum := started.Add(time.Duration(req.MinDuration) * time.Millisecond)
	stop := t.lib.StartPool(req.Queue, workers, interval)
	drained := false
	for time.Now().Before(deadline) {
		done, err := t.drained(req.Queue)
		if err != nil {
			// The server may be restarting; the workers retry too.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if done && !time.Now().Before(minimum) {
			drained = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(started)
	stop()
	return map[string]interface{}{"drained": drained, "elapsed_ms": float64(elapsed.Microseconds()) / 1000}, nil
}

func (t *testee) lock(req Request) (interface{}, error) {
	held, err := t.lib.Lock(req.Queue)
	if err != nil {
		return nil, err
	}
	if held == nil {
		return map[string]interface{}{"job": nil}, nil
	}
	return map[string]interface{}{"job": map[string]interface{}{
		"job_id":      held.ID,
		"queue":       held.Queue,
		"priority":    held.Priority,
		"run_at":      held.RunAt.Format(time.RFC3339Nano),
		"job_class":   held.Type,
		"error_count": held.ErrorCount,
	}}, nil
}

// -- the job classes every testee registers ------------------------------------------

func (t *testee) record(j Job, received *string) error {
	_, err := t.pool.Exec(
		"INSERT INTO "+t.resultsTable+" (impl, pid, job_id, job_class, received, raw) VALUES ($1, $2, $3, $4, $5, $6)",
		t.lib.Name(), int32(os.Getpid()), j.ID, j.Type, received, string(j.Args),
	)
	return err
}

func positional(j Job) []interface{} {
	var args []interface{}
	_ = json.Unmarshal(j.Args, &args)
	return args
}

func (t *testee) echo(j Job) error {
	var value interface{}
	if err := json.Unmarshal(j.Args, &value); err != nil {
		return err
	}
	out, err := json.Marshal(value)
	if err != nil {
		return err
	}
	received := string(out)
	return t.record(j, &received)
}

func (t *testee) fail(j Job) error {
	message := "failed"
	if args := positional(j); len(args) > 0 {
		if s, ok := args[0].(string); ok {
			message = s
		}
	}
	return errors.New(message)
}

func (t *testee) sleep(j Job) error {
	if args := positional(j); len(args) > 0 {
		if ms, ok := args[0].(float64); ok {
			time.Sleep(time.Duration(ms * float64(time.Millisecond)))
		}
	}
	return t.record(j, nil)
}

func (t *testee) flaky(j Job) error {
	failures := 1.0
	if args := positional(j); len(args) > 0 {
		if n, ok := args[0].(float64); ok {
			failures = n
		}
	}
	if float64(j.ErrorCount) < failures {
		return fmt.Errorf("flaky failure %d of %v", j.ErrorCount+1, failures)
	}
	received := fmt.Sprintf("[%d]", j.ErrorCount)
	return t.record(j, &received)
}
