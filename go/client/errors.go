package client

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// FieldViolation names the attribute ("oci-artifact") or the field path
// (refs["linux/amd64"][0].digest) an error is about.
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failure reported by the server (or by the transport, with its
// gRPC code). Its message is the server's message: BuildKit's error text
// where BuildKit has one.
type Error struct {
	Code       codes.Code
	Message    string
	Violations []FieldViolation
	// RequestID is the server's x-request-id for the call, when it sent one.
	RequestID string
	// Addr is the server address of the client.
	Addr string

	status *status.Status
}

func (e *Error) Error() string {
	if e.Code == codes.Unavailable {
		return fmt.Sprintf("oxport at %s is unavailable: %s", e.Addr, e.Message)
	}
	return e.Message
}

// GRPCStatus keeps the original status, details included, so that gRPC
// layers above (status.FromError, BuildKit's grpcerrors) see the code.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Field gives the first field violation's field, or "".
func (e *Error) Field() string {
	if len(e.Violations) == 0 {
		return ""
	}
	return e.Violations[0].Field
}

// Code gives the gRPC code of err: codes.OK for nil, codes.Unknown for an
// error that carries no status.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

func (c *Client) wrap(err error, mds ...metadata.MD) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message(), Addr: c.addr, status: st}
	for _, md := range mds {
		if ids := md.Get("x-request-id"); len(ids) > 0 && e.RequestID == "" {
			e.RequestID = ids[0]
		}
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				e.Violations = append(e.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}
