namespace CmpWaldurAdapter.Cli;

/// <summary>Process exit codes of every command (documented in the README).</summary>
public static class ExitCodes
{
    /// <summary>Done; nothing left to do.</summary>
    public const int Success = 0;

    /// <summary>The command ran, but something it checked is not right (an order failed, drift remains).</summary>
    public const int Unfinished = 1;

    /// <summary>The command could not run: bad arguments, bad configuration, or an unreachable upstream.</summary>
    public const int Error = 2;

    /// <summary>Stopped by Ctrl-C or SIGTERM before it finished (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;
}
