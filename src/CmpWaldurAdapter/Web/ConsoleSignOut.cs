using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// A console session its buyer signed out of. The session cookie is a signed token, valid by itself until it expires:
/// this row is what makes a copy of it (kept by another tab, a backup, someone else) open nothing after sign-out. Kept
/// until the cookie would have expired anyway, then purged (<see cref="Persistence.ExpiredRowsPurge"/>).
/// </summary>
public sealed class ConsoleSignOut
{
    /// <summary>The session's own id, inside its signed cookie (new for every session started).</summary>
    public Guid SessionId { get; set; }

    /// <summary>When the session's cookie expires: after that the token is refused anyway.</summary>
    public DateTimeOffset ExpiresAt { get; set; }

    public DateTimeOffset SignedOutAt { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<ConsoleSignOut>(signOut =>
        {
            signOut.ToTable("console_sign_outs");
            signOut.HasKey(s => s.SessionId);
            signOut.Property(s => s.SessionId).ValueGeneratedNever();
            signOut.HasIndex(s => s.ExpiresAt);
        });
}
