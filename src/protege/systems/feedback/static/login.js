// Sign-in page: POST /login as JSON, then go to the app shell (the server set the session cookie).
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const body = {
    username: document.getElementById("username").value,
    password: document.getElementById("password").value,
  };
  let response;
  try {
    response = await fetch("/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    error.textContent = "The server cannot be reached; try again.";
    return;
  }
  if (response.ok) {
    window.location.assign("/");
  } else if (response.status === 429) {
    error.textContent = "Too many failed attempts; wait a minute and try again.";
  } else if (response.status === 401) {
    error.textContent = "Wrong user name or password.";
  } else {
    error.textContent = `Sign-in failed (HTTP ${response.status}).`;
  }
});
