package egressgw

/*
#include <stdlib.h>
#include "egress_gateway.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Result is a result code of the C ABI (egress_result). Values are fixed: a code is never
// reused for another meaning.
type Result uint32

// The result codes, equal to the header's EGRESS_RESULT_* (a test reads the header).
const (
	ResultOK               Result = 0
	ResultPanic            Result = 1
	ResultNullParameter    Result = 2
	ResultInvalidUTF8      Result = 3
	ResultInvalidEnum      Result = 4
	ResultInsufficientSize Result = 5
	ResultParse            Result = 6
	ResultInput            Result = 7
	ResultPolicy           Result = 8
	ResultCapacity         Result = 9
	ResultDecode           Result = 10
	ResultInvalidArgument  Result = 11
	ResultKernel           Result = 12
	ResultOutOfMemory      Result = 13
)

// One sentinel per failure code: errors.Is(err, ErrPolicy) says what kind of failure err is.
var (
	// ErrPanic: a bug, the library panicked; the call did nothing reliable. Close the engine
	// and build another.
	ErrPanic = errors.New("egressgw: the library panicked")
	// ErrNullParameter: a required pointer was NULL (a bug of this package if it happens).
	ErrNullParameter = errors.New("egressgw: NULL parameter")
	// ErrInvalidUTF8: a text argument is not UTF-8.
	ErrInvalidUTF8 = errors.New("egressgw: text is not UTF-8")
	// ErrInvalidEnum: an enum argument (Selection, Layout, MapID, ...) has an unknown value.
	ErrInvalidEnum = errors.New("egressgw: unknown enum value")
	// ErrInsufficientSize: an output buffer was too small (handled inside this package).
	ErrInsufficientSize = errors.New("egressgw: buffer too small")
	// ErrParse: the text is not YAML/JSON or holds the wrong number of documents.
	ErrParse = errors.New("egressgw: unreadable YAML/JSON")
	// ErrInput: input errors of a snapshot or object, each with its field path.
	ErrInput = errors.New("egressgw: invalid input")
	// ErrPolicy: an invalid policy (a *PolicyError); the previous version stays in force.
	ErrPolicy = errors.New("egressgw: invalid policy")
	// ErrCapacity: a map's desired state exceeds its max entries; nothing was handed out.
	ErrCapacity = errors.New("egressgw: map capacity exceeded")
	// ErrDecode: map bytes that do not decode into an entry.
	ErrDecode = errors.New("egressgw: undecodable map bytes")
	// ErrInvalidArgument: an argument's value is not accepted (unknown node, ...).
	ErrInvalidArgument = errors.New("egressgw: invalid argument")
	// ErrKernel: a kernel call failed; the *Error's Errno says why.
	ErrKernel = errors.New("egressgw: kernel call failed")
	// ErrOutOfMemory: memory the machine refused (a plan's operations); nothing changed.
	ErrOutOfMemory = errors.New("egressgw: out of memory")

	// ErrClosed: the engine was closed. Not a C result code.
	ErrClosed = errors.New("egressgw: engine closed")
)

// results ties each code to the header's name (EGRESS_RESULT_<name>) and its sentinel.
var results = []struct {
	code     Result
	name     string
	sentinel error
}{
	{ResultOK, "OK", nil},
	{ResultPanic, "PANIC", ErrPanic},
	{ResultNullParameter, "NULL_PARAMETER", ErrNullParameter},
	{ResultInvalidUTF8, "INVALID_UTF8", ErrInvalidUTF8},
	{ResultInvalidEnum, "INVALID_ENUM", ErrInvalidEnum},
	{ResultInsufficientSize, "INSUFFICIENT_SIZE", ErrInsufficientSize},
	{ResultParse, "PARSE", ErrParse},
	{ResultInput, "INPUT", ErrInput},
	{ResultPolicy, "POLICY", ErrPolicy},
	{ResultCapacity, "CAPACITY", ErrCapacity},
	{ResultDecode, "DECODE", ErrDecode},
	{ResultInvalidArgument, "INVALID_ARGUMENT", ErrInvalidArgument},
	{ResultKernel, "KERNEL", ErrKernel},
	{ResultOutOfMemory, "OUT_OF_MEMORY", ErrOutOfMemory},
}

// String is the header's name without its prefix: "POLICY", "INVALID_ARGUMENT", ...
func (r Result) String() string {
	if int(r) < len(results) {
		return results[r].name
	}
	return fmt.Sprintf("Result(%d)", uint32(r))
}

// Sentinel is the ErrXxx value of the code (nil for ResultOK and unknown codes).
func (r Result) Sentinel() error {
	if int(r) < len(results) {
		return results[r].sentinel
	}
	return nil
}

// FieldError is one error about one field: its path (spec.egressGateways[1].egressIP,
// endpoint.ips[0], local_node, ...) and the reason, as Kubernetes words them.
type FieldError struct {
	Path   string
	Reason string
}

func (f FieldError) String() string { return f.Path + ": " + f.Reason }

// Error is a failure of the library: its code, message, field errors and errno. Every error
// this package returns is an *Error, a *PolicyError (which unwraps to an *Error) or
// ErrClosed. errors.Is matches the code's sentinel (and, for ResultKernel, the errno).
type Error struct {
	Code    Result
	Message string       // the whole message, one line per field error
	Fields  []FieldError // every field error (none when the error is not about fields)
	Errno   syscall.Errno
}

func (e *Error) Error() string {
	msg := strings.ReplaceAll(e.Message, "\n", "; ")
	if msg == "" {
		return fmt.Sprintf("egressgw: %s", strings.ToLower(e.Code.String()))
	}
	return "egressgw: " + msg
}

// Path is the first field error's path, or "".
func (e *Error) Path() string {
	if len(e.Fields) == 0 {
		return ""
	}
	return e.Fields[0].Path
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s := e.Code.Sentinel()
	return s != nil && target == s
}

// Unwrap gives the errno of a kernel failure (so errors.Is(err, fs.ErrNotExist) works).
func (e *Error) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return nil
}

// PolicyError is an invalid policy: its name and every field error. The previous version of
// the policy (if any) stays in force. It unwraps to the *Error, so errors.Is(err, ErrPolicy).
type PolicyError struct {
	Policy string // metadata.name ("" when the policy has none)
	Fields []FieldError
	Err    *Error
}

func (e *PolicyError) Error() string {
	name := e.Policy
	if name == "" {
		name = "<unnamed>"
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.String()
	}
	if len(parts) == 0 && e.Err != nil {
		parts = append(parts, e.Err.Message)
	}
	return fmt.Sprintf("egressgw: invalid policy %q: %s", name, strings.Join(parts, "; "))
}

// Path is the first field error's path.
func (e *PolicyError) Path() string { return e.Err.Path() }

// Unwrap gives the *Error.
func (e *PolicyError) Unwrap() error { return e.Err }

// argumentError is a Go-side refusal of an argument, worded as the library words its own.
func argumentError(path, reason string) error {
	return &Error{
		Code:    ResultInvalidArgument,
		Message: path + ": " + reason,
		Fields:  []FieldError{{Path: path, Reason: reason}},
	}
}

// failure turns a result code and the optional egress_error into a Go error, freeing the
// egress_error. It returns nil for ResultOK (freeing nothing but cerr).
func failure(code C.egress_result, cerr *C.egress_error) error {
	defer C.egress_error_free(cerr)
	if code == C.EGRESS_RESULT_OK {
		return nil
	}
	e := &Error{Code: Result(code)}
	if cerr == nil {
		e.Message = strings.ToLower(strings.ReplaceAll(e.Code.String(), "_", " "))
		return e
	}
	e.Message = C.GoString(C.egress_error_message(cerr))
	e.Errno = syscall.Errno(C.egress_error_errno(cerr))
	n := int(C.egress_error_field_count(cerr))
	if n > 0 {
		e.Fields = make([]FieldError, n)
		for i := range e.Fields {
			e.Fields[i] = FieldError{
				Path:   goString(C.egress_error_field_path(cerr, C.size_t(i))),
				Reason: goString(C.egress_error_field_reason(cerr, C.size_t(i))),
			}
		}
	}
	if e.Code == ResultPolicy {
		return &PolicyError{Policy: goString(C.egress_error_policy(cerr)), Fields: e.Fields, Err: e}
	}
	return e
}

// goString is C.GoString with NULL as "".
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}
