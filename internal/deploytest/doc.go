// Package deploytest checks the deployment files (Dockerfile, compose.yaml)
// with the real parsers, since no Docker engine runs where the tests do: it
// asserts what would break a deployment, not the files' wording.
package deploytest
