package e2e

func cleanupBinary() {}
