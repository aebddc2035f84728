package sandbox

import "context"

// newShell starts a bash session in dir with the executor's user, env and
// soft timeout. It lives until closed (the executor closes the main one in
// Close, static ones after their command).
func (x *Executor) newShell(ctx context.Context, dir string) (shell, error) {
	s, err := NewBashSession(ctx, BashOptions{
		WorkDir:         dir,
		User:            x.cfg.user,
		Env:             x.cfg.env,
		NoChangeTimeout: x.cfg.noChangeTimeout,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
