package buildkitexporter

import (
	"context"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/oxport/oxport/go/client"
	pb "github.com/oxport/oxport/go/exporterv1"
	"google.golang.org/grpc/codes"
)

// sessionAuth answers oxport's registry challenges through the client's
// session, as BuildKit's own pushes get theirs: a Bearer registry gets a
// token that the client fetched with its own credentials (FetchToken), so
// the long-lived secret never leaves the client; a Basic registry gets the
// username and secret the client holds (Credentials), which is what such a
// registry needs. A client without credentials, or without the auth
// session, is anonymous. A push therefore uses the buildctl or buildx
// user's Docker config or credential helper, never oxport's.
func sessionAuth(sm *session.Manager, g session.Group) client.AuthFunc {
	return func(ctx context.Context, ch *pb.AuthChallenge) (*client.Credentials, error) {
		host := sessionHost(ch.GetHost())
		if ch.GetRealm() == "" {
			_, user, secret, err := auth.CredentialsFunc(ctx, sm, g)(host)
			if err != nil {
				return nil, err
			}
			if user == "" && secret == "" {
				return nil, nil
			}
			return &client.Credentials{Username: user, Secret: secret}, nil
		}
		resp, err := auth.FetchToken(ctx, &auth.FetchTokenRequest{
			ClientID: "buildkit-client",
			Host:     host,
			Realm:    ch.GetRealm(),
			Service:  ch.GetService(),
			Scopes:   ch.GetScopes(),
		}, sm, g)
		if err != nil {
			if grpcerrors.Code(err) == codes.Unimplemented {
				return nil, nil
			}
			return nil, err
		}
		return &client.Credentials{Token: resp.GetToken()}, nil
	}
}

// sessionHost names a registry the way BuildKit's resolver names it to the
// session: by the host it talks to, which for Docker Hub is not the name in
// image references. The client's auth provider keys Docker Hub's
// credentials on that host.
func sessionHost(host string) string {
	if host == "docker.io" || host == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return host
}
